#!/usr/bin/env bash
# The README's first command: install, start the embedded server (SQLite + a local folder + the
# in-process worker, no services), run demo/run.py against it, stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
install_python "worker"
OUT=${DEMO_OUT:-demo-output}
DATA=$(mktemp -d -t vrft-demo-XXXX)
PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export VRFT_DATA_DIR="$DATA" VRFT_PYTHON_GRADER_ENABLED=true VRFT_POLL_INTERVAL_MS=500
export VRFT_MODEL_CACHE=${VRFT_MODEL_CACHE:-$HOME/.cache/vrft}
.venv/bin/vrft-server serve --port "$PORT" >"$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  kill -0 $SERVER 2>/dev/null || { cat "$DATA/server.log"; exit 1; }
  sleep 0.5
done
export VRFT_API_KEY=$(.venv/bin/vrft-server create-key --project demo 2>/dev/null)
export VRFT_BASE_URL="http://127.0.0.1:$PORT"
echo "vrft embedded server on $VRFT_BASE_URL (data in $DATA); dashboard at $VRFT_BASE_URL/"
.venv/bin/python -m demo.run --out "$OUT" --model-cache "$VRFT_MODEL_CACHE/models"
