"""Data-parallel scaling: GRPO steps per second on W = 1, 2, … ranks, same global batch (strong scaling).

    python bench/scaling.py                          # CPU: the medium preset of train_step.py on 1 and 2 ranks
    python bench/scaling.py --preset tiny --ranks 1,2
    python bench/scaling.py --preset 2b --ranks 1,2,4,8   # a multi-GPU host: one rank per GPU (NCCL)

Each W runs under `torchrun --standalone --nproc-per-node W` — the launcher the host agent uses for a
job with `resources.gpus = W` — with our trainer only (workers/training/grpo.py), the presets, model
folders, data and random rewards of bench/train_step.py. The step's prompts are split across ranks
(distributed.py), so the ideal is W× the steps per second of one rank; what falls short is the
gradient all-reduce, the per-step metric reductions, and the slowest rank's share (a step waits for
it). On CPU every rank gets `--threads` threads (default 1), so W ranks use W cores: on a machine with
fewer free cores than ranks the figure measures contention, not scaling.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.train_step import PRESETS, Preset, dry, model_folder, run_ours  # noqa: E402


def child(args) -> None:
    import torch

    from workers.training import distributed

    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    preset = Preset(**json.loads(args.preset_json))
    with tempfile.TemporaryDirectory() as out:
        result = run_ours(preset, Path(args.model_dir), Path(out))
    if distributed.current().is_main:
        print("RESULT " + json.dumps(result | {"world_size": distributed.current().size}), flush=True)
    distributed.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="medium")
    parser.add_argument("--dry", action="store_true", help="the preset's code path at toy sizes, on CPU")
    parser.add_argument("--ranks", default=None, help="comma-separated world sizes (default: 1,2 on CPU; 1…#GPUs)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: the preset's)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per rank (CPU only)")
    parser.add_argument("--cache", type=Path, default=ROOT / "var" / "bench", help="where model folders are built")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--preset-json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    import torch

    cuda = torch.cuda.is_available()
    preset, name = PRESETS[args.preset], args.preset
    if not preset.cpu and not args.dry and not cuda:
        print(f"preset {args.preset} needs a GPU; on a CPU run it with --dry", file=sys.stderr)
        return 2
    if args.dry:
        preset, name = dry(preset), f"{args.preset}-dry"
    if args.steps:
        preset = preset.__class__(**(asdict(preset) | {"steps": args.steps}))
    ranks = [int(r) for r in args.ranks.split(",")] if args.ranks else \
        list(range(1, torch.cuda.device_count() + 1)) if cuda else [1, 2]
    if any(w > preset.prompts for w in ranks):
        print(f"preset {name} has {preset.prompts} prompts per step: at most that many ranks", file=sys.stderr)
        return 2
    args.cache.mkdir(parents=True, exist_ok=True)
    folder = model_folder(name, preset, args.cache)
    print(f"preset {name}: {preset.prompts} prompts × {preset.group} completions × {preset.tokens} tokens, "
          f"{preset.image}² images, {preset.steps} timed steps after {preset.warmup}; ranks {ranks}"
          + ("" if cuda else f", {args.threads} thread(s) per rank on {os.cpu_count()} CPUs"))
    results = []
    for w in ranks:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
               "--nproc-per-node", str(w), __file__, "--child", "--model-dir", str(folder),
               "--preset-json", json.dumps(asdict(preset)), "--threads", str(args.threads)]
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        if not cuda:
            env |= {"OMP_NUM_THREADS": str(args.threads)}
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(f"W={w} failed:\n{proc.stderr[-4000:]}", file=sys.stderr)
            return 1
        r = json.loads(lines[-1][len("RESULT "):])
        results.append(r | {"steps_per_s": 1.0 / r["step_time_s"]})

    device = torch.cuda.get_device_name() if cuda else "CPU"
    base = results[0]["steps_per_s"]
    print(f"\ndevice: {device}")
    print(f"{'W':>3} {'step s':>9} {'steps/s':>9} {'speed-up':>9} {'efficiency':>11}")
    for r in results:
        speedup = r["steps_per_s"] / base
        print(f"{r['world_size']:>3} {r['step_time_s']:9.3f} {r['steps_per_s']:9.3f} {speedup:9.2f} "
              f"{speedup / r['world_size'] * results[0]['world_size']:11.0%}")
    print("JSON " + json.dumps({"preset": name, "device": device, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
