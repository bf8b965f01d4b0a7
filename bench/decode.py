"""Rollout decoding: our engine (workers/training/engine.py) vs Hugging Face `generate`, same model and prompts.

    python bench/decode.py                       # CPU: the medium architecture, 4 prompts × 8 rows × 64 tokens
    python bench/decode.py --preset 2b           # GPU: Qwen2-VL-2B architecture, 16 prompts × 8 = 128 rows × 256
    python bench/decode.py --preset 2b --dry     # CPU: the 2b code path at toy sizes (checks the script)

Greedy decoding, so both produce the same tokens (checked) and do the same amount of useful work; a random
model rarely emits an EOS, so nearly every row runs to the token limit. Tokens/s counts generated tokens
(rows × steps) over the wall time of the whole call (prefill included), after one untimed warm-up call.
On CUDA our engine runs twice: with the token step as a captured CUDA graph and eagerly, to show what the
graph is worth. Random weights: speed only, no quality.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.train_step import PRESETS, dry, examples, model_folder  # noqa: E402
from bench.train_step import ROOT as _ROOT


def timed(fn, device) -> tuple[float, object]:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=["medium", "2b"], default="medium")
    parser.add_argument("--dry", action="store_true", help="the preset's code path at toy sizes, on CPU")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per engine (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 on CPU)")
    parser.add_argument("--cache", type=Path, default=_ROOT / "var" / "bench")
    args = parser.parse_args()

    import torch

    from workers.training import engine
    from workers.training.model import load_model
    from workers.training.rollout import generate_rollouts, image_features, prepare_prompts

    cuda = torch.cuda.is_available()
    if not cuda:
        torch.set_num_threads(args.threads or 1)
    preset = PRESETS[args.preset]
    name = args.preset
    if not preset.cpu and not args.dry and not cuda:
        print(f"preset {args.preset} needs a GPU; on a CPU run it with --dry", file=sys.stderr)
        return 2
    if args.dry:
        preset, name = dry(preset), f"{args.preset}-dry"
        preset = replace(preset, tokens=8)
    args.cache.mkdir(parents=True, exist_ok=True)
    folder = model_folder(name, preset, args.cache)
    loaded = load_model(folder)
    model = loaded.model.eval()
    device = next(model.parameters()).device
    batch = prepare_prompts(loaded.processor, examples(preset, preset.prompts), device)
    images = image_features(model, batch)
    options = dict(tokenizer=loaded.processor.tokenizer, group_size=preset.group, max_new_tokens=preset.tokens,
                   eos_token_ids=loaded.eos_token_ids, pad_token_id=loaded.pad_token_id, do_sample=False,
                   suppressed_token_ids=loaded.suppressed_token_ids)
    runs = {"hf_generate": lambda: generate_rollouts(model, batch, images, **options),
            "ours": lambda: engine.sample(model, batch, images, cuda_graphs=True, **options)}
    if cuda:
        runs["ours_eager"] = lambda: engine.sample(model, batch, images, cuda_graphs=False, **options)
    rows = preset.prompts * preset.group
    print(f"preset {name}: {rows} rows ({preset.prompts} prompts × {preset.group}) × {preset.tokens} new tokens, "
          f"prompt {batch.input_ids.shape[1]} tokens, greedy, device {torch.cuda.get_device_name() if cuda else 'CPU'}")
    results, outputs = {}, {}
    with torch.no_grad():
        for label, fn in runs.items():
            fn()  # warm-up: lazy inits, kernels, graph capture paths
            seconds = []
            for _ in range(args.repeats):
                elapsed, out = timed(fn, device)
                seconds.append(elapsed)
            outputs[label] = out
            tokens = out.completion_ids.numel()
            best = min(seconds)
            results[label] = {"seconds": best, "tokens": tokens, "tokens_per_s": tokens / best}
            print(f"{label:12} {best:8.3f} s   {tokens:7d} tokens   {tokens / best:10.0f} tokens/s")
    same = all(torch.equal(outputs[k].completion_ids, outputs["hf_generate"].completion_ids) for k in outputs)
    ratio = results["ours"]["tokens_per_s"] / results["hf_generate"]["tokens_per_s"]
    print(f"identical greedy tokens: {same}")
    print(f"ratio ours/HF generate: tokens/s {ratio:.2f}")
    print("JSON " + json.dumps({"preset": name, "device": "cuda" if cuda else "cpu", "results": results,
                                "identical": same}))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
