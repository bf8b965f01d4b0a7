"""Scratch space for uploads in flight, which a killed process cannot leave behind for good.

Each API process writes its temp files into its own folder, ``<data_dir>/tmp/proc-<pid>-<rand>/``,
and holds an exclusive ``flock`` on a lock file inside it for as long as it lives. The kernel drops
that lock when the process dies however it dies (SIGKILL, OOM), so at start-up any folder whose lock
can be taken belongs to nobody and is removed — while the folders of other live processes sharing the
data folder (several uvicorn workers) are left alone, whatever their age.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
import uuid
from functools import lru_cache
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_PREFIX = "proc-"
_LOCK = ".lock"
# Loose files directly under tmp/ were written by versions before per-process folders; nothing
# writes there now, so anything that old is an orphan.
_LOOSE_MAX_AGE_S = 3600.0


@lru_cache
def process_scratch_dir(tmp_root: Path) -> Path:
    """This process's scratch folder under ``tmp_root``, created and locked on first use.

    Creating it also sweeps the folders of dead processes: the start-up pass does that too, but it
    needs storage up to revalidate files, and disk space should not wait for storage."""
    folder = tmp_root / f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / _LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    # The descriptor stays open (and locked) until the process exits; lru_cache keeps the folder.
    sweep_stale(tmp_root)
    return folder


def sweep_stale(tmp_root: Path) -> list[Path]:
    """Remove scratch folders whose owning process is gone, and loose pre-folder temp files."""
    removed: list[Path] = []
    if not tmp_root.is_dir():
        return removed
    for entry in tmp_root.iterdir():
        if entry.is_dir() and entry.name.startswith(_PREFIX):
            if _owner_alive(entry):
                continue
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        elif entry.is_file() and time.time() - entry.stat().st_mtime > _LOOSE_MAX_AGE_S:
            entry.unlink(missing_ok=True)
            removed.append(entry)
    if removed:
        log.info("files.scratch_swept", removed=len(removed))
    return removed


def _owner_alive(folder: Path) -> bool:
    try:
        fd = os.open(folder / _LOCK, os.O_RDWR)
    except FileNotFoundError:
        # Killed between mkdir and creating the lock: nobody can own it. A folder created this
        # instant by a live process is not here yet either way (it creates the lock right after).
        return time.time() - folder.stat().st_mtime < 60
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock we may have just taken
    return False
