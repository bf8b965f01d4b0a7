#!/usr/bin/env bash
# The README's test command: installs everything into .venv, lints and type-checks (ruff, mypy as
# configured in pyproject.toml), makes sure Postgres, Redis and SeaweedFS answer, then runs the whole
# suite. A lint or type error fails the run before any test starts. Safe to run again; a second run
# reuses the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
install_python "worker,dev"
.venv/bin/ruff check .
.venv/bin/mypy  # its targets and strictness are in pyproject.toml
ensure_services
install_browser
export PYTHONUNBUFFERED=1
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
