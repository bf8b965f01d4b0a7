"""Per-process scratch folders: a dead process's folder is swept, a live one's never is."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from app.files.scratch import process_scratch_dir, sweep_stale

HOLDER = """
import sys, time
from pathlib import Path
from app.files.scratch import process_scratch_dir
folder = process_scratch_dir(Path(sys.argv[1]))
(folder / "upload-half").write_bytes(b"partial")
print(folder, flush=True)
time.sleep(600)
"""


def _holder(tmp_root):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_root)], stdout=subprocess.PIPE, text=True)
    folder = proc.stdout.readline().strip()
    return proc, folder


def test_a_killed_process_folder_is_swept_a_live_one_is_not(tmp_path):
    root = tmp_path / "tmp"
    live_proc, live_folder = _holder(root)
    dead_proc, dead_folder = _holder(root)
    try:
        mine = process_scratch_dir(root)
        (mine / "upload-in-flight").write_bytes(b"x")
        dead_proc.kill()
        dead_proc.wait(timeout=10)
        removed = sweep_stale(root)
        assert [str(p) for p in removed] == [dead_folder]
        assert not os.path.exists(dead_folder)
        assert os.path.exists(os.path.join(live_folder, "upload-half"))  # another live process's upload
        assert (mine / "upload-in-flight").exists()  # this process's own
    finally:
        live_proc.kill()
        live_proc.wait(timeout=10)
    assert [str(p) for p in sweep_stale(root)] == [live_folder]


def test_creating_a_scratch_folder_sweeps_dead_ones(tmp_path):
    """Even when the start-up pass cannot run (storage down), the first upload frees the disk."""
    root = tmp_path / "tmp"
    dead_proc, dead_folder = _holder(root)
    dead_proc.kill()
    dead_proc.wait(timeout=10)
    process_scratch_dir.cache_clear()
    try:
        process_scratch_dir(root)
        assert not os.path.exists(dead_folder)
    finally:
        process_scratch_dir.cache_clear()


def test_loose_temp_files_from_older_versions_are_swept_once_old(tmp_path):
    root = tmp_path / "tmp"
    root.mkdir()
    old, fresh = root / "upload-abc", root / "upload-def"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    hour_ago = time.time() - 7200
    os.utime(old, (hour_ago, hour_ago))
    assert sweep_stale(root) == [old]
    assert fresh.exists()


def test_sweeping_a_missing_folder_is_a_no_op(tmp_path):
    assert sweep_stale(tmp_path / "nothing-here") == []
