"""Dry run: before any training is queued, tell the user whether GRPO can learn from this setup.

Runs one real GRPO step (so the seconds-per-step figure includes the backward pass on this hardware)
on a sample of training rows and reports what matters: the reward histogram, how many groups have
zero variance (GRPO learns nothing from those), how often completions fail to parse, and the time
per step × steps = the job's expected duration.
"""

from __future__ import annotations

import random
from collections import Counter

from app.jobs.hyperparameters import ResolvedHyperparameters
from app.jobs.metrics import StepMetrics


class _Collect:
    def __init__(self):
        self.metrics: list[StepMetrics] = []
        self.rollouts: list[dict] = []

    def on_step(self, metrics: StepMetrics):
        self.metrics.append(metrics)

    def on_rollouts(self, step, rollouts):
        self.rollouts.extend(rollouts)


def histogram(values: list[float], bins: int = 10) -> dict:
    if not values:
        return {"edges": [], "counts": []}
    lo, hi = min(values), max(values)
    if hi == lo:
        return {"edges": [lo, hi], "counts": [len(values)]}
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    return {"edges": [round(lo + i * width, 6) for i in range(bins + 1)], "counts": counts}


def dry_run(config, hp: ResolvedHyperparameters, train_data: list[dict], grader: dict, *, seed: int,
            samples: int) -> dict:
    """``config``: the job's TrainConfig (``workers.train_config``); one step of ``samples`` rows is run."""
    from workers.training.grpo import train

    n = min(samples, len(train_data))
    sample = random.Random(seed).sample(list(train_data), n)
    full_config = config
    config = config.replace(prompts_per_step=n, grad_accum=1, max_steps=1, checkpoint_interval=0, eval_interval=0,
                            rollouts_logged_per_step=n)
    collect = _Collect()
    result = train(config, sample, None, grader, collect)
    step = collect.metrics[0]
    rewards = [r for ro in collect.rollouts for r in ro["rewards"]]
    total = len(rewards)
    flag_counts: Counter = Counter()
    for ro in collect.rollouts:
        for name, values in ro["flags"].items():
            flag_counts[name] += sum(bool(v) for v in values)
    seconds = step["step_time_s"]
    per_full_step = seconds * hp.batch_size / n  # the job's steps use batch_size prompts
    report = {
        "rows_sampled": n,
        "group_size": config.group_size,
        "completions": total,
        "reward_mean": step["reward_mean"],
        "reward_std": step["reward_std"],
        "reward_histogram": histogram(rewards),
        "rewards": step["rewards"],
        "zero_variance_group_fraction": step["zero_variance_fraction"],
        "flag_rates": {name: count / max(total, 1) for name, count in sorted(flag_counts.items())},
        "completion_length_mean": step["completion_length_mean"],
        "seconds_per_step": per_full_step,
        "measured_step_seconds": seconds,
        "estimated_total_seconds": per_full_step * hp.max_steps,
        "examples": [{"prompt": ro["prompt"], "completion": ro["completions"][0], "reward": ro["rewards"][0]}
                     for ro in collect.rollouts[:3]],
    }
    from workers.training.memory import advice, estimate_for_job

    memory = estimate_for_job(full_config, result.model)  # the job's real batch, not the sample's
    report["memory_estimate"] = memory.to_dict()
    if advice(memory):
        report["memory_warning"] = advice(memory)
    zero = report["zero_variance_group_fraction"]
    report["summary"] = (f"reward {report['reward_mean']:.3f} ± {report['reward_std']:.3f}; "
                         f"{zero:.0%} of groups have zero variance; "
                         f"~{per_full_step:.1f} s/step → ~{report['estimated_total_seconds'] / 60:.1f} min")
    if zero >= 0.9:
        report["warning"] = ("Almost every group scores the same for all completions: GRPO will learn little. "
                             "Check the grader against a few completions, raise temperature or group_size.")
    return report
