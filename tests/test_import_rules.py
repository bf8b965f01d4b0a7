"""The one-way imports the layout promises, checked in fresh interpreters (this test process has
imported everything already):

- the API (``create_app`` and every module under ``app/``) never loads torch, transformers or
  ``workers``: it enqueues by task name, so an API image needs no ML stack;
- ``workers.training`` loads no Celery, SQLAlchemy or FastAPI: the trainer is a library that runs
  in a notebook with no service around it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Prints the names of the loaded modules whose top-level package is in FORBIDDEN, as JSON.
PROBE = """
import importlib, json, pkgutil, sys
{setup}
for info in pkgutil.walk_packages(importlib.import_module({package!r}).__path__, {package!r} + "."):
    importlib.import_module(info.name)
forbidden = {forbidden!r}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in forbidden)))
"""


def loaded_forbidden(package: str, forbidden: set[str], tmp_path: Path, setup: str = "") -> list[str]:
    env = {**os.environ, "VRFT_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("VRFT_DATABASE_URL", None)  # create_app must not need a database to be built
    code = PROBE.format(setup=setup, package=package, forbidden=sorted(forbidden))
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_api_never_imports_the_ml_stack_or_workers(tmp_path):
    setup = "from app.main import create_app\ncreate_app()"
    assert loaded_forbidden("app", {"torch", "transformers", "workers"}, tmp_path, setup) == []


def test_the_trainer_imports_no_service_framework(tmp_path):
    assert loaded_forbidden("workers.training", {"celery", "sqlalchemy", "fastapi"}, tmp_path) == []
