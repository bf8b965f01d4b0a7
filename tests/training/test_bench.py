"""The benchmark script works before anyone spends GPU time on it: the 2b preset at toy sizes, on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_2b_preset_dry_run_compares_both_trainers(tmp_path):
    pytest.importorskip("trl")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "train_step.py"), "--preset", "2b", "--dry",
                           "--cache", str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2.21 B parameters" in proc.stdout  # the real Qwen2-VL-2B architecture was built (on meta)
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("JSON ")]
    report = json.loads(line[5:])
    assert set(report["results"]) == {"ours", "trl"}
    for result in report["results"].values():
        assert result["step_time_s"] > 0 and result["peak_memory_gib"] > 0


@pytest.mark.slow
def test_decode_bench_dry_run_checks_greedy_parity(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "decode.py"), "--preset", "2b", "--dry",
                           "--repeats", "1", "--cache", str(tmp_path)], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("JSON ")]
    report = json.loads(line[5:])
    assert report["identical"] is True and set(report["results"]) >= {"ours", "hf_generate"}


@pytest.mark.slow
def test_scaling_bench_dry_run_times_one_and_two_ranks(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "scaling.py"), "--preset", "tiny", "--dry",
                           "--ranks", "1,2", "--cache", str(tmp_path)], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("JSON ")]
    report = json.loads(line[5:])
    assert [r["world_size"] for r in report["results"]] == [1, 2]
    assert all(r["steps_per_s"] > 0 for r in report["results"])
