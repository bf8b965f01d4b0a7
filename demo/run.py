"""The README's first command, end to end against a running vrft server (see scripts/demo.sh):

1. draw two synthetic datasets with Pillow and upload them (train + validation),
2. a `visual_rft` **detection** job on the built-in tiny Qwen2-VL with a validation file: progress,
   checkpoints, adapter download, `PeftModel.from_pretrained`, base-vs-tuned validation metrics,
3. a dry run, then a short job on a reward a random tiny model can earn, to show GRPO learning
   (reward rising from chance, validation score before vs after) in well under a minute,
4. supervised fine-tuning on chat rows with per-image answers, then an RFT job started from that
   SFT model (it begins where SFT ended), and the three jobs side by side (`vrft jobs compare`).

The tiny model has random weights: job 2 exercises every part of the real path, but only job 3's
numbers mean "it learned". On a real checkpoint (VRFT_BASE_MODELS) the same calls train for real.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import vrft
from demo import synthetic
from vrft.datasets import write_jsonl

MODEL = "vrft/tiny-qwen2-vl"


def say(msg: str) -> None:
    print(f"\n== {msg}", flush=True)


def eval_points(client: vrft.Client, job_id: str) -> list[dict]:
    events = [e.data for e in client.jobs.events(job_id) if e.type == "metrics" and e.data and e.data.get("eval")]
    return sorted(events, key=lambda d: d["step"])


def base_vs_tuned(client: vrft.Client, job_id: str) -> dict:
    points = eval_points(client, job_id)
    if not points:
        return {}
    base, tuned = points[0], points[-1]
    row = {f"base (step {base['step']})": base, f"tuned (step {tuned['step']})": tuned}
    for label, p in row.items():
        metric = f", {p.get('valid_metric_name')} {p.get('valid_metric', 0):.3f}" if p.get("valid_metric_name") else ""
        print(f"   {label:>18}: validation reward {p['valid_reward_mean']:.3f}{metric}")
    return {"base": base, "tuned": tuned}


def load_adapter(adapter_dir: Path, model_cache: str | None) -> None:
    """Prove the artifact is a normal PEFT adapter: load it on the base model and run it."""
    import torch
    from peft import PeftModel

    from workers.training.model import load_model
    from workers.training.tiny import resolve_model

    base = load_model(resolve_model(MODEL, model_cache), device="cpu").model
    ids = torch.tensor([[11, 12, 13, 14]])
    with torch.no_grad():
        before = base(input_ids=ids).logits
        tuned = PeftModel.from_pretrained(base, str(adapter_dir))
        after = tuned(input_ids=ids).logits
    change = (after - before).abs().max().item()
    print(f"   PeftModel.from_pretrained({adapter_dir}) loaded; max logit change vs base: {change:.4f}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="demo-output")
    parser.add_argument("--model-cache", default=None)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    client = vrft.Client(timeout=120)
    started = time.time()

    say("1. Synthetic datasets (Pillow)")
    det_train = write_jsonl(out / "shapes_train.jsonl", synthetic.shapes_detection(8, seed=1))
    det_val = write_jsonl(out / "shapes_val.jsonl", synthetic.shapes_detection(2, seed=2))
    col_train = write_jsonl(out / "colours_train.jsonl", synthetic.colours(6))
    col_val = write_jsonl(out / "colours_val.jsonl", synthetic.colours(3))
    files = {name: client.files.upload(path) for name, path in
             (("det_train", det_train), ("det_val", det_val), ("col_train", col_train), ("col_val", col_val))}
    for name, f in files.items():
        report = client.files.validation(f.id)
        print(f"   {name}: {f.id} {f.status}, {report.rows_valid} rows ({report.format})")

    say("2. visual_rft detection job on the tiny Qwen2-VL, with a validation file")
    job = client.jobs.create(
        model=MODEL, training_file=files["det_train"].id, validation_file=files["det_val"].id,
        grader={"type": "visual_rft", "name": "visual_rft", "task": "detection"}, suffix="shapes",
        hyperparameters={"max_steps": 4, "batch_size": 2, "group_size": 4, "max_completion_tokens": 24,
                         "checkpoint_interval": 2, "eval_samples": 6})
    print(f"   created {job.id} ({job.status}); following progress:")
    job = client.jobs.wait(job.id, progress=True)
    print(f"   {job.status}: {job.fine_tuned_model}")
    for ck in client.jobs.checkpoints(job.id).data:
        print(f"   checkpoint step {ck.step_number}: {json.dumps(ck.metrics)}")
    adapter = client.jobs.download_adapter(job.id, out / "detection-adapter", extract=True)
    print(f"   adapter downloaded to {adapter}")
    load_adapter(Path(adapter), args.model_cache)
    print("   base vs tuned (random tiny model: expect ~0 on both — the paper's rewards need a real model):")
    detection = base_vs_tuned(client, job.id)

    say("3. Dry run, then GRPO visibly learning (colour task, sandboxed python grader)")
    hp = {"max_steps": 30, "batch_size": 3, "group_size": 16, "max_completion_tokens": 1,
          "learning_rate": 5e-3, "checkpoint_interval": 15, "lora": {"r": 16, "alpha": 32, "dropout": 0.0}}
    dry = client.jobs.create(model=MODEL, training_file=files["col_train"].id, grader=synthetic.COLOUR_CODE_GRADER,
                             hyperparameters=hp, dry_run=True)
    dry = client.jobs.wait(dry.id, progress=False)
    print(f"   dry run: {dry.dry_run_report['summary']}")
    job = client.jobs.create(model=MODEL, training_file=files["col_train"].id, validation_file=files["col_val"].id,
                             grader=synthetic.COLOUR_CODE_GRADER, hyperparameters=hp, suffix="colours", seed=0)
    job = client.jobs.wait(job.id, progress=True)
    steps = [e.data for e in client.jobs.events(job.id) if e.type == "metrics" and e.data and not e.data.get("eval")]
    rewards = [round(s["reward_mean"], 2) for s in steps]
    print(f"   reward per step: {rewards}")
    learning = base_vs_tuned(client, job.id)
    client.jobs.download_adapter(job.id, out / "colour-adapter", extract=True)

    say("4. Supervised fine-tuning on chat rows, then RFT from the SFT model, compared")
    answers = client.files.upload(write_jsonl(out / "answers.jsonl", synthetic.colour_answers(3)))
    questions = client.files.upload(write_jsonl(out / "questions.jsonl", synthetic.colour_answers(3, questions=True)))
    print(f"   answers: {answers.id} suits {answers.methods}; questions: {questions.id} suits {questions.methods}")
    sft = client.jobs.create(
        model=MODEL, training_file=answers.id, validation_file=answers.id, method_type="supervised",
        grader=synthetic.EXACT_CODE_GRADER, suffix="sft", seed=0,
        hyperparameters={"max_steps": 40, "batch_size": 3, "learning_rate": 1e-2, "max_completion_tokens": 8,
                         "lora": {"r": 8, "alpha": 16, "dropout": 0.0}})
    sft = client.jobs.wait(sft.id, progress=True)
    losses = sorted((e.data["step"], e.data["train_loss"]) for e in client.jobs.events(sft.id)
                    if e.type == "metrics" and e.data and "train_loss" in e.data)
    print(f"   train_loss {losses[0][1]:.3f} at step {losses[0][0]} → {losses[-1][1]:.3f} at step {losses[-1][0]}")
    base_vs_tuned(client, sft.id)
    chained = client.jobs.create(
        model=sft.fine_tuned_model, training_file=questions.id, validation_file=questions.id, suffix="sft-rft",
        grader=synthetic.EXACT_CODE_GRADER, seed=0,
        hyperparameters={"max_steps": 4, "batch_size": 3, "group_size": 4, "max_completion_tokens": 8})
    print(f"   RFT from {sft.fine_tuned_model}")
    chained = client.jobs.wait(chained.id, progress=True)
    start = eval_points(client, chained.id)[0]
    print(f"   its step-0 validation exact match {start['valid_rewards']['exact']:.2f} "
          f"(the SFT model's final: {eval_points(client, sft.id)[-1]['valid_rewards']['exact']:.2f})")
    from vrft.cli import main as cli

    cli(["jobs", "compare", job.id, sft.id, chained.id])

    summary = {"detection_job": detection, "learning_job": learning, "rewards": rewards,
               "sft_job": sft.id, "sft_rft_job": chained.id, "seconds": round(time.time() - started, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    say(f"Done in {summary['seconds']} s; summary in {out / 'summary.json'}. Dashboard: {client.base_url}/")
    tuned = learning.get("tuned", {}).get("valid_reward_mean", 0)
    base = learning.get("base", {}).get("valid_reward_mean", 0)
    return 0 if tuned > base else 1


if __name__ == "__main__":
    sys.exit(main())
