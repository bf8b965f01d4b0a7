"""Shared fixtures: the three tiny model folders, built once per test session.

Torch runs single-threaded here: the CI machines have 2 cores shared with other work, and with
tiny matrices two OpenMP threads spin-wait on each other (we measured 10–30× slower generate).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workers.training.tiny import TINY_NAMES, resolve_model

torch.set_num_threads(1)

FAMILIES = ["qwen2-vl", "qwen2.5-vl", "qwen3-vl"]


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """A cache folder holding all three tiny models (built here once, through resolve_model)."""
    cache = tmp_path_factory.mktemp("models")
    for name in TINY_NAMES:
        resolve_model(name, cache)
    return cache
