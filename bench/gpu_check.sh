#!/usr/bin/env bash
# The performance issue's GPU measurements as one prepared script (the device tool runs it once):
#   1. bench/decode.py --preset 2b      our engine vs HF generate, 128 rows × 256 tokens, greedy
#   2. bench/train_step.py --preset 2b  our GRPO step vs TRL's, 16 prompts × 8 × 256, LoRA r16
# Check it first on a CPU at toy sizes:   bash bench/gpu_check.sh --dry
# The GPU machine has torch/transformers/peft but maybe not TRL: without it step 2 runs ours alone
# (`--only ours`) and the README compares with TRL's H200 figures measured elsewhere (23.5–27.8 s, 47.1 GiB).
# Carry TRL along as wheels if wanted: pip download trl datasets --no-deps -d wheels/ (≤ 64 MiB in all).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DRY=${1:-}
if [ -d wheels ]; then $PY -m pip install -q --no-deps wheels/*.whl || true; fi
$PY -c "import torch, transformers, peft; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '', '| transformers', transformers.__version__, '| peft', peft.__version__)"
$PY bench/decode.py --preset 2b $DRY
if $PY -c "import trl, datasets" 2>/dev/null; then
  $PY bench/train_step.py --preset 2b $DRY
else
  echo "TRL not installed here: our trainer alone"
  $PY bench/train_step.py --preset 2b --only ours $DRY
fi
