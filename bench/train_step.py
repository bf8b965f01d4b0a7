"""Step time and peak memory: our Visual-RFT trainer vs TRL's GRPOTrainer, same workload, side by side.

    python bench/train_step.py --preset tiny          # CPU: the tiny Qwen2-VL, runs anywhere
    python bench/train_step.py --preset medium        # CPU: Qwen2-VL shapes at hidden 512, 4 layers, 448² images,
                                                      # 4 prompts × 8 × 64 tokens, LoRA r16
    python bench/train_step.py --preset 2b            # GPU: Qwen2-VL-2B architecture, random weights,
                                                      # 16 prompts × 8 × 256 tokens, 448² images, LoRA r16
    python bench/train_step.py --preset 2b --dry      # CPU: the 2b code path at toy sizes (checks the script)

Both trainers get the same model folder, data, reward and settings (β 0.04, G 8, temperature 1,
top-p 1, same max completion tokens, loss "grpo", group-scaled advantages, one update per batch,
LoRA on the language model's q/k/v/o/gate/up/down with the same regex, same lr, grad clip 1.0,
gradient checkpointing on or off for both). TRL counts completions in its batch size, so it gets
`per_device_train_batch_size = prompts × G` and `num_generations = G`: one optimizer step per
rollout batch, as ours. Each trainer runs in its own child process, so each peak-memory figure is
that trainer's alone (CUDA: max allocated; CPU: max resident set size of the child). The first
`warmup` steps are not timed. TRL is a dev/bench dependency only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Qwen2-VL-2B-Instruct's architecture (its config.json), weights random.
QWEN2_VL_2B_TEXT = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                        num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                        rms_norm_eps=1e-6,
                        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]})
QWEN2_VL_2B_VISION = dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, mlp_ratio=4, patch_size=14,
                          spatial_merge_size=2, temporal_patch_size=2)
# The medium CPU preset (the performance issue): the 2B's shapes where they cost per token (vocabulary,
# vision tower width, 448² images → 256 image tokens), a small trunk so a CPU step takes seconds.
MEDIUM_TEXT = dict(vocab_size=151936, hidden_size=512, intermediate_size=1536, num_hidden_layers=4,
                   num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
                   rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [8, 12, 12]})
MEDIUM_VISION = dict(QWEN2_VL_2B_VISION, depth=2, hidden_size=512)
PROMPT = "Identify the colour of this image. Output the final answer in <answer> </answer> tags."


@dataclass(frozen=True)
class Preset:
    prompts: int  # prompts per optimizer step
    group: int  # completions per prompt (G)
    tokens: int  # max completion tokens
    image: int  # square image side, pixels
    steps: int  # timed steps
    warmup: int = 1  # untimed first steps
    lora_r: int = 16
    gradient_checkpointing: bool = False
    text: dict | None = None  # None: the built-in tiny model
    vision: dict | None = None
    top: dict = field(default_factory=dict)
    cpu: bool = True  # False: the architecture is too big for a CPU run (use --dry there)


PRESETS = {
    "tiny": Preset(prompts=4, group=8, tokens=16, image=56, steps=4),
    "medium": Preset(prompts=4, group=8, tokens=64, image=448, steps=2, text=MEDIUM_TEXT, vision=MEDIUM_VISION,
                     top={"tie_word_embeddings": True}),
    "2b": Preset(prompts=16, group=8, tokens=256, image=448, steps=3, gradient_checkpointing=True,
                 text=QWEN2_VL_2B_TEXT, vision=QWEN2_VL_2B_VISION, top={"tie_word_embeddings": True}, cpu=False),
}


def dry(preset: Preset) -> Preset:
    """The same code path at toy sizes: 1-layer trunks, 2 prompts × 2 completions × 4 tokens."""
    text = dict(preset.text or {}, vocab_size=4096, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                num_attention_heads=4, num_key_value_heads=2,
                rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]})
    vision = dict(preset.vision or {}, depth=1, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2)
    return replace(preset, prompts=2, group=2, tokens=4, image=56, steps=1, warmup=1, text=text, vision=vision)


def parameter_count(preset: Preset) -> int:
    """Parameters of the preset's architecture, counted on the meta device (no memory used)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from workers.training import tiny

    ids = {t: i for i, t in enumerate(tiny.SPECIAL_TOKENS, start=256)} | {"__len__": 256 + len(tiny.SPECIAL_TOKENS)}
    config = tiny._config("qwen2-vl", ids, preset.text, preset.vision, preset.top)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    return sum(p.numel() for p in model.parameters())


def model_folder(name: str, preset: Preset, cache: Path) -> Path:
    from workers.training.tiny import make_model_folder, resolve_model

    if preset.text is None:
        return resolve_model("vrft/tiny-qwen2-vl", cache)
    folder = cache / f"bench-{name}"
    if not (folder / "config.json").is_file():
        import torch

        cuda = torch.cuda.is_available()
        tmp = Path(tempfile.mkdtemp(prefix=f".bench-{name}-", dir=cache))
        make_model_folder("qwen2-vl", tmp, text=preset.text, vision=preset.vision, top=preset.top,
                          lm_head_std=None, dtype=torch.bfloat16 if cuda else torch.float32,
                          device="cuda" if cuda else None)
        tmp.rename(folder)
    return folder


# ------------------------------------------------------------------------------------------ data


def examples(preset: Preset, n: int) -> list[dict]:
    from PIL import Image

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (preset.image, preset.image), colours[i % len(colours)]).save(buf, "PNG")
        out.append({"id": str(i), "prompt": PROMPT, "image": buf.getvalue(), "item": {}})
    return out


# Rewards are random numbers, the same stream for both trainers: every group has variance, so
# both do the full work every step (ours skips zero-variance groups, which would flatter it, and
# a random 2B model's completions are mostly ids our small benchmark tokenizer cannot spell).
_REWARDS = random.Random(0)


def our_reward(samples, items):
    rewards = [_REWARDS.random() for _ in samples]
    return rewards, {"random": rewards}, {}


def trl_reward(prompts, completions, **kwargs):
    return [_REWARDS.random() for _ in completions]


def peak_memory_gib() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


# ---------------------------------------------------------------------------------- the two runs


def run_ours(preset: Preset, folder: Path, out: Path, changes: dict | None = None) -> dict:
    from workers.training.config import TrainConfig
    from workers.training.grpo import train

    config = TrainConfig(model=str(folder), output_dir=str(out), group_size=preset.group,
                         prompts_per_step=preset.prompts, max_steps=preset.warmup + preset.steps,
                         max_completion_tokens=preset.tokens, learning_rate=1e-5, beta=0.04, temperature=1.0,
                         top_p=1.0, lora_r=preset.lora_r, lora_alpha=2 * preset.lora_r, lora_dropout=0.05,
                         gradient_checkpointing=preset.gradient_checkpointing, seed=0, **(changes or {}))
    data = examples(preset, preset.prompts * (preset.warmup + preset.steps))
    result = train(config, data, grader=our_reward)
    timed = result.metrics[preset.warmup:]
    return {"step_time_s": sum(m["step_time_s"] for m in timed) / len(timed),
            "generate_time_s": sum(m["generate_time_s"] for m in timed) / len(timed),
            "completion_length_mean": sum(m["completion_length_mean"] for m in timed) / len(timed),
            "peak_memory_gib": peak_memory_gib()}


def run_trl(preset: Preset, folder: Path, out: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from workers.training.data import to_image
    from workers.training.lora import target_regex
    from workers.training.model import load_model

    cuda = torch.cuda.is_available()
    loaded = load_model(folder)
    rows = [{"prompt": [{"role": "user", "content": ex["prompt"]}], "image": to_image(ex["image"])}
            for ex in examples(preset, preset.prompts * (preset.warmup + preset.steps))]

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self._start = [], 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self._start)

    timer = StepTimer()
    args = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=preset.prompts * preset.group,
        gradient_accumulation_steps=1, num_generations=preset.group, max_completion_length=preset.tokens,
        temperature=1.0, top_p=1.0, top_k=0, beta=0.04, loss_type="grpo", scale_rewards="group",
        num_iterations=1, epsilon=0.2, learning_rate=1e-5, lr_scheduler_type="constant", warmup_steps=0,
        max_grad_norm=1.0, max_steps=preset.warmup + preset.steps, logging_steps=1, save_strategy="no",
        report_to="none", bf16=cuda, use_cpu=not cuda, gradient_checkpointing=preset.gradient_checkpointing,
        seed=0, dataloader_num_workers=0, disable_tqdm=True)
    peft_config = LoraConfig(r=preset.lora_r, lora_alpha=2 * preset.lora_r, lora_dropout=0.05,
                             target_modules=target_regex(), task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=loaded.model, reward_funcs=[trl_reward], args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=loaded.processor,
                          peft_config=peft_config, callbacks=[timer])
    trainer.train()
    timed = timer.times[preset.warmup:]
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    lengths = lengths[preset.warmup:] or lengths
    return {"step_time_s": sum(timed) / len(timed), "generate_time_s": None,
            "completion_length_mean": sum(lengths) / max(len(lengths), 1), "peak_memory_gib": peak_memory_gib()}


# ----------------------------------------------------------------------------------------- driver


def child(args) -> None:
    import torch

    threads = args.threads if args.threads is not None else (0 if torch.cuda.is_available() else 1)
    if threads:
        torch.set_num_threads(threads)
    preset = Preset(**json.loads(args.preset_json))
    with tempfile.TemporaryDirectory() as out:
        if args.child == "ours":
            result = run_ours(preset, Path(args.model_dir), Path(out), json.loads(args.ours_json or "{}"))
        else:
            result = run_trl(preset, Path(args.model_dir), Path(out))
    print("RESULT " + json.dumps(result), flush=True)


def _setting(item: str) -> tuple[str, object]:
    """FIELD=VALUE with VALUE as JSON (false, 2, "x") or, failing that, a plain string."""
    key, _, value = item.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--dry", action="store_true", help="the preset's code path at toy sizes, on CPU")
    parser.add_argument("--only", choices=["ours", "trl"], help="run one trainer only")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads in the children (default: 1 without a GPU — small matrices on "
                             "shared CPUs — else torch's default)")
    parser.add_argument("--cache", type=Path, default=ROOT / "var" / "bench", help="where model folders are built")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                        help="a TrainConfig change for our trainer, e.g. --set rollout_engine=generate "
                             "--set share_prompt=false (what each speed-up is worth)")
    parser.add_argument("--child", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--ours-json", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--preset-json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    import torch

    preset = PRESETS[args.preset]
    name = args.preset
    changes = dict(_setting(item) for item in args.set)
    if not preset.cpu and not args.dry and not torch.cuda.is_available():
        print(f"preset {args.preset} needs a GPU; on a CPU run it with --dry", file=sys.stderr)
        return 2
    if args.dry:
        print(f"{args.preset}: {parameter_count(preset) / 1e9:.2f} B parameters in the full architecture")
        preset, name = dry(preset), f"{args.preset}-dry"
    args.cache.mkdir(parents=True, exist_ok=True)
    folder = model_folder(name, preset, args.cache)
    print(f"preset {name}: {preset.prompts} prompts × {preset.group} completions × {preset.tokens} tokens, "
          f"{preset.image}² images, LoRA r{preset.lora_r}, gradient checkpointing "
          f"{'on' if preset.gradient_checkpointing else 'off'}, {preset.steps} timed steps after {preset.warmup}"
          + (f"; ours with {changes}" if changes else ""))
    results = {}
    for trainer in [args.only] if args.only else ["ours", "trl"]:
        cmd = [sys.executable, __file__, "--child", trainer, "--model-dir", str(folder),
               "--preset-json", json.dumps(asdict(preset))]
        if args.threads is not None:
            cmd += ["--threads", str(args.threads)]
        if trainer == "ours" and changes:
            cmd += ["--ours-json", json.dumps(changes)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              env=os.environ | {"PYTHONPATH": str(ROOT)})
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(f"{trainer} failed:\n{proc.stderr[-4000:]}", file=sys.stderr)
            return 1
        results[trainer] = json.loads(lines[-1][len("RESULT "):])

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    memory = "peak GPU memory allocated" if torch.cuda.is_available() else "peak RSS of the process"
    print(f"\ndevice: {device}   (memory: {memory})")
    print(f"{'trainer':8} {'step s':>9} {'generate s':>11} {'peak GiB':>9} {'compl. len':>11}")
    for trainer, r in results.items():
        gen = f"{r['generate_time_s']:.3f}" if r["generate_time_s"] is not None else "-"
        print(f"{trainer:8} {r['step_time_s']:9.3f} {gen:>11} {r['peak_memory_gib']:9.2f} "
              f"{r['completion_length_mean']:11.1f}")
    if len(results) == 2:
        ours, trl = results["ours"], results["trl"]
        print(f"ratio ours/TRL: step time {ours['step_time_s'] / trl['step_time_s']:.2f}, "
              f"peak memory {ours['peak_memory_gib'] / trl['peak_memory_gib']:.2f}")
    print("JSON " + json.dumps({"preset": name, "device": device, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
