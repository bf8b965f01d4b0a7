"""Visual-RFT training: GRPO with verifiable rewards on a LoRA adapter.

Variant. The paper's GRPO (Visual-RFT, arXiv 2503.01785; VISUAL_RFT.md): G sampled completions per
prompt, tokens after the first EOS masked, advantages (r − mean_g)/(std_g + 1e-4), per-token k3 KL
to the reference with weight β (0.04), loss = −mean over sequences of the per-sequence token mean
of (ρ·A − β·KL). With `num_iterations` μ = 1, ρ = exp(logp − logp.detach()) (≡ 1, gradient of
logp) — exactly the paper. Options: μ > 1 (PPO-clipped ρ against the log-probs of the policy that
sampled, ε / ε_high), `dapo` / `dr_grpo` aggregation, `batch` / `none` advantage scaling.

Where we depart from the paper, and why:
- LoRA, not full fine-tuning; the reference policy is the same network with the adapter disabled.
- Groups whose completions all got the same reward (zero variance) are left out of the loss — not
  only their advantage term (0 anyway) but also their KL term, and out of the sequence count
  that normalises the loss. Their log-probs are not even computed. An optimizer step thus only
  moves on groups that carry signal; a step where every group is flat makes no update (the
  learning-rate schedule still advances). The fraction is reported as `zero_variance_fraction`.
  The paper's code keeps them (advantage 0, KL still pulling toward the reference).
- Log-probs (policy, old, reference) are taken at the sampling temperature, as the samples were;
  the paper samples at 1.0, where both agree.
- Each image goes through the vision tower once per step (LoRA leaves it untouched), see rollout.py.
- Each prompt is computed once per group, not once per completion: the rollout engine prefills it once
  and fans its cache out to the G rows (engine.py), and the policy / old / reference passes pack a
  group into one row with a prefix mask (packing.py). Same numbers as the per-completion recompute.
- `prompts_per_step` prompts make one optimizer step whatever `grad_accum` is: accumulation only
  splits the loss passes, and the loss is normalised by whole-batch counts, so the update is the
  same as without accumulation.

A step reads top to bottom in `grpo_step`: sample → score → advantages → log-probs → loss →
optimizer → metrics.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from workers.training import algo, distributed, engine
from workers.training.config import TrainConfig
from workers.training.data import check_examples
from workers.training.hooks import bind
from workers.training.logprobs import completion_logprobs
from workers.training.loop import Run, TrainResult, build_run, run_loop
from workers.training.rewards import make_reward_fn, score_completions
from workers.training.rollout import image_features, prepare_prompts, subset


def _micro_batches(groups: list[int], group_size: int, groups_per_micro: int, device) -> list[torch.Tensor]:
    """Row indices of each micro-batch, from the groups that are trained on."""
    out = []
    for start in range(0, len(groups), groups_per_micro):
        chunk = groups[start:start + groups_per_micro]
        rows = [g * group_size + j for g in chunk for j in range(group_size)]
        out.append(torch.tensor(rows, dtype=torch.long, device=device))
    return out


def grpo_step(run: Run, examples: Sequence[dict[str, Any]], step: int) -> tuple[dict[str, Any], list[dict]]:
    """One GRPO step on `examples` (prompts_per_step of them) → (metrics, rollouts to log).

    With W ranks (distributed.py) this rank works on its contiguous share of `examples`; every count
    that normalises the loss, and every metric, is summed over ranks, and so are the LoRA gradients.
    """
    cfg, model, G = run.config, run.model, run.config.group_size
    world = distributed.current()
    t0 = time.perf_counter()
    first, last = world.share(len(examples))
    examples = list(examples)[first:last]

    # 1. Sample G completions per prompt: each prompt prefilled once (no dropout while sampling), each
    #    prompt's draws keyed by (seed, step, position), whichever rank has it.
    model.eval()
    batch = prepare_prompts(run.loaded.processor, examples, run.device)
    images = image_features(model, batch)  # vision tower once per prompt
    generators = [distributed.prompt_generator(cfg.seed, step, first + i, run.device) for i in range(len(examples))]
    rollouts = engine.sample_with(
        cfg.rollout_engine, model, batch, images, cuda_graphs=cfg.cuda_graphs, tokenizer=run.loaded.processor.tokenizer,
        group_size=G, max_new_tokens=cfg.max_completion_tokens, eos_token_ids=run.loaded.eos_token_ids,
        pad_token_id=run.loaded.pad_token_id, temperature=cfg.temperature, top_p=cfg.top_p,
        suppressed_token_ids=run.loaded.suppressed_token_ids, generators=generators)
    t_generated = time.perf_counter()

    # 2. Score every completion; 3. group-relative advantages.
    scores = score_completions(run.reward_fn, rollouts.texts, batch.examples, rollouts.image_index.tolist(),
                               batch.image_sizes, batch.resized_sizes)
    rewards = torch.tensor(scores.rewards, dtype=torch.float32, device=run.device)  # (N,)
    n_all, r_sum, r_sq = distributed.all_sum([rewards.numel(), float(rewards.sum()), float((rewards ** 2).sum())],
                                             run.device)
    batch_std = math.sqrt(max(r_sq - r_sum ** 2 / n_all, 0.0) / max(n_all - 1, 1))  # whole-batch std (Bessel)
    advantages = algo.group_advantages(rewards, G, cfg.scale_rewards, batch_std=batch_std)  # (N,)
    flat = algo.zero_variance_groups(rewards, G)  # (B,)
    informative = [g for g in range(len(examples)) if not flat[g]]
    micro_rows = _micro_batches(informative, G, max(1, math.ceil(len(examples) / cfg.grad_accum)), run.device)
    micros = [subset(rollouts, rows) for rows in micro_rows]
    # whole-batch counts (all micro-batches, all ranks): accumulation and data parallelism keep full-batch maths
    n_seq, n_tok = distributed.all_sum([len(informative) * G, float(sum(m.completion_mask.sum() for m in micros))],
                                       run.device)

    # 4. Reference (adapter off) and old-policy log-probs, once per rollout batch.
    def logprobs(m):  # (n, T) log-probs of micro-batch m's completions under the model as it is now
        return completion_logprobs(model, m, images, temperature=cfg.temperature, chunk_tokens=cfg.logit_chunk_tokens,
                                   suppressed_token_ids=run.loaded.suppressed_token_ids, share_prompt=cfg.share_prompt)

    with torch.no_grad():
        ref_logps = old_logps = None
        if cfg.beta and micros:
            with model.disable_adapter():
                ref_logps = [logprobs(m) for m in micros]
        if cfg.num_iterations > 1 and micros:
            old_logps = [logprobs(m) for m in micros]

    # 5. Loss and μ optimizer updates over the same rollouts.
    learning_rate = run.scheduler.get_last_lr()[0]
    losses, kls, clips, grad_norms = [], [], [], []
    model.train()
    for _ in range(cfg.num_iterations):
        if not n_seq:  # every group flat (on every rank): no update (the schedule still advances)
            with warnings.catch_warnings():  # torch warns about a scheduler step with no optimizer step
                warnings.simplefilter("ignore", UserWarning)
                run.scheduler.step()
            continue
        run.optimizer.zero_grad(set_to_none=True)
        loss_sum, kl_sum, clip_sum = 0.0, 0.0, 0.0
        for k, (m, rows) in enumerate(zip(micros, micro_rows, strict=True)):
            logp = logprobs(m)  # (n, T), with grad
            old = old_logps[k] if old_logps is not None else logp.detach()
            ref = ref_logps[k] if ref_logps is not None else None
            loss, stats = algo.policy_loss(
                logp, old, ref, advantages[rows], m.completion_mask, beta=cfg.beta, epsilon=cfg.epsilon,
                epsilon_high=cfg.epsilon_high, loss_type=cfg.loss_type,
                max_completion_tokens=cfg.max_completion_tokens, num_sequences=n_seq, num_tokens=n_tok)
            loss.backward()
            loss_sum += loss.item()
            kl_sum += stats["kl"].item() * stats["tokens"].item()
            clip_sum += stats["clip_ratio"].item() * stats["tokens"].item()
        distributed.all_sum_grads(run.params)
        grad_norms.append(torch.nn.utils.clip_grad_norm_(run.params, cfg.max_grad_norm).item())
        run.optimizer.step()
        run.scheduler.step()
        loss_sum, kl_sum, clip_sum = distributed.all_sum([loss_sum, kl_sum, clip_sum], run.device)
        losses.append(loss_sum)
        kls.append(kl_sum / max(n_tok, 1.0))
        clips.append(clip_sum / max(n_tok, 1.0))
    model.eval()
    if run.device.type == "cuda":  # kernels run asynchronously: time the work, not its launch
        torch.cuda.synchronize(run.device)
    t_end = time.perf_counter()

    # 6. Metrics (summed over ranks) and a few rollouts for people to read.
    lengths = rollouts.completion_mask.sum(dim=1)
    names = sorted(scores.sub_rewards)
    sums = distributed.all_sum([float(lengths.sum()), float(flat.sum()), len(examples)]
                               + [float(np.sum(scores.sub_rewards[name])) for name in names], run.device)
    generated, n_flat, n_prompts = sums[:3]
    per_grader = {name: total / n_all for name, total in zip(names, sums[3:], strict=True)} \
        or {run.grader_name: r_sum / n_all}
    metrics = {
        "step": step,
        "reward_mean": r_sum / n_all,
        "reward_std": batch_std if n_all > 1 else 0.0,
        "rewards": per_grader,
        "zero_variance_fraction": n_flat / n_prompts,
        "kl": float(np.mean(kls)) if kls else None,  # None: no update this step (all groups flat)
        "loss": float(np.mean(losses)) if losses else None,
        "clip_ratio": float(np.mean(clips)) if clips else None,
        "grad_norm": float(np.mean(grad_norms)) if grad_norms else None,
        "completion_length_mean": generated / n_all,
        "learning_rate": learning_rate,
        "tokens_per_s": generated / max(t_end - t0, 1e-9),
        "generate_time_s": t_generated - t0,
        "step_time_s": t_end - t0,
        "world_size": world.size,
    }
    logged = []
    for g in range(min(cfg.rollouts_logged_per_step, len(examples))):
        rows = range(g * G, (g + 1) * G)
        logged.append({
            "prompt_id": str(examples[g].get("id", "")),
            "prompt": examples[g]["prompt"],
            "image_size": batch.image_sizes[g],  # what the completions' box coordinates refer to
            "resized_image_size": batch.resized_sizes[g],
            "completions": [rollouts.texts[r] for r in rows],
            "rewards": [scores.rewards[r] for r in rows],
            "sub_rewards": {name: [v[r] for r in rows] for name, v in scores.sub_rewards.items()},
            "advantages": [float(advantages[r]) for r in rows],
            "flags": {name: [v[r] for r in rows] for name, v in scores.flags.items()},
        })
    return metrics, logged


def train(config: TrainConfig, train_data: Sequence[dict[str, Any]],
          val_data: Sequence[dict[str, Any]] | None = None, grader: Any = None, hooks: Any = None) -> TrainResult:
    """Fine-tune `config.model` with Visual-RFT GRPO as a LoRA adapter.

    `train_data`/`val_data`: sequences of `{"id", "prompt", "image": bytes | PIL.Image, "item": dict}`.
    `grader`: a grader spec dict (scored by `app.graders.score`) or a callable
    `reward_fn(samples, items)`. `hooks`: see hooks.py. Returns a `TrainResult`.
    """
    if grader is None:
        raise ValueError("train() needs a grader: a grader spec dict or a reward_fn(samples, items)")
    world = distributed.init_from_env(config.device)
    if config.prompts_per_step < world.size:
        raise ValueError(f"prompts_per_step ({config.prompts_per_step}) must be >= the world size ({world.size}): "
                         "a group never spans ranks")
    hooks = bind(hooks)
    check_examples(train_data)
    reward_fn, grader_name = make_reward_fn(grader)
    run, state = build_run(config)
    run.reward_fn, run.grader_name = reward_fn, grader_name

    def eval_fn(run: Run) -> dict[str, Any]:
        from workers.training.evaluate import evaluate

        return evaluate(run.model, run.loaded, val_data, grader, task=config.eval_task,
                        max_new_tokens=config.max_completion_tokens, limit=config.eval_samples,
                        rollout_engine=config.rollout_engine)

    return run_loop(run, state, train_data, val_data, hooks, step_fn=grpo_step, eval_fn=eval_fn,
                    updates_per_step=config.num_iterations)
