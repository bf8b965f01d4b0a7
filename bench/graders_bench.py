"""Detection grading throughput on one core: the ``visual_rft`` detection preset
(format + IoU + confidence) on completions with 5 predicted and 5 ground-truth boxes.

Batches look like a GRPO step: 16 prompts × 8 completions, so each ground truth repeats 8 times.
Target: ≥ 10,000 completions/s.   Run:  .venv/bin/python bench/graders_bench.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.graders import score  # noqa: E402

GRADER = {"type": "visual_rft", "name": "det", "task": "detection"}
PROMPTS, GROUP = 16, 8


def _box(rng: random.Random) -> list[int]:
    x, y = rng.randint(0, 800), rng.randint(0, 800)
    return [x, y, x + rng.randint(40, 199), y + rng.randint(40, 199)]


def _answer(boxes: list[list[int]], confs: list[float]) -> str:
    items = (f"{{'Position': {b}, 'Confidence': {c:.2f}}}" for b, c in zip(boxes, confs, strict=True))
    return "[" + ", ".join(items) + "]"


def make_batch(rng: random.Random) -> tuple[list[dict], list[dict]]:
    samples, items = [], []
    for _ in range(PROMPTS):
        truth = [_box(rng) for _ in range(5)]
        item = {"solution": f"<answer>{_answer(truth, [1.0] * 5)}</answer>"}
        for _ in range(GROUP):
            # jitter some boxes (matches of varying IoU), replace others (misses)
            pred = [
                [v + rng.randint(-15, 15) for v in b] if rng.random() < 0.7 else _box(rng) for b in truth
            ]
            confs = [rng.random() for _ in pred]
            text = f"<think>I count five objects.</think> <answer>{_answer(pred, confs)}</answer>"
            samples.append({"output_text": text})
            items.append(item)
    return samples, items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--distinct-batches", type=int, default=200)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    rng = random.Random(0)
    batches = [make_batch(rng) for _ in range(args.distinct_batches)]
    score(GRADER, *batches[0])  # compile once, as a job does

    # Per batch, CPU time as well as wall time: on a shared machine the wall clock also counts
    # time spent waiting for a core. Noise only ever adds time, so the best batch is the closest
    # to what one dedicated core does; the median is reported beside it.
    per_batch: list[float] = []
    done, started, k = 0, time.perf_counter(), 0
    while time.perf_counter() - started < args.seconds:
        samples, items = batches[k % len(batches)]
        cpu0 = time.process_time()
        result = score(GRADER, samples, items)
        per_batch.append(time.process_time() - cpu0)
        done += len(result.rewards)
        k += 1
    elapsed = time.perf_counter() - started
    per_batch.sort()
    n = PROMPTS * GROUP
    mean = sum(result.rewards) / len(result.rewards)
    print(f"detection preset, 5 pred x 5 gt boxes, batches of {PROMPTS}x{GROUP}, one core")
    print(f"{done} completions, {k} batches in {elapsed:.2f} s (last batch mean reward {mean:.3f})")
    print(f"wall, whole run:      {done / elapsed:>9,.0f} completions/s")
    print(f"CPU, all batches:     {done / sum(per_batch):>9,.0f} completions/s")
    print(f"CPU, median batch:    {n / per_batch[len(per_batch) // 2]:>9,.0f} completions/s")
    print(f"CPU, best batch:      {n / per_batch[0]:>9,.0f} completions/s")


if __name__ == "__main__":
    main()
