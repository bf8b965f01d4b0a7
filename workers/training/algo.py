"""GRPO maths as small pure tensor functions (no model, no I/O).

Shapes: N = number of completions in the batch (prompts × G), T = completion length (padded),
G = group size. Completions of one prompt are contiguous: rows [k*G, (k+1)*G) form group k.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

ADV_EPS = 1e-4  # the paper's std offset: A = (r - mean) / (std + 1e-4)
LOSS_TYPES = ("grpo", "dr_grpo", "dapo")
SCALES = ("group", "batch", "none")


def completion_mask(completion_ids: torch.Tensor, eos_ids: Iterable[int]) -> torch.Tensor:
    """(N, T) long ids → (N, T) float mask: 1 up to and including the first EOS, 0 after.

    A completion with no EOS (cut at max tokens) keeps every token.
    """
    is_eos = torch.zeros_like(completion_ids, dtype=torch.bool)
    for eos in eos_ids:
        is_eos |= completion_ids == eos
    # number of EOS strictly before position t; keep t while that count is 0
    eos_before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()
    return (eos_before == 0).float()


def group_view(values: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) → (N/G, G); raises when N is not a multiple of G."""
    if values.dim() != 1 or values.numel() % group_size:
        raise ValueError(f"expected (N,) with N a multiple of {group_size}, got {tuple(values.shape)}")
    return values.view(-1, group_size)


def zero_variance_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) rewards → (N/G,) bool: True where every completion of the group got the same reward."""
    grouped = group_view(rewards, group_size)
    return (grouped == grouped[:, :1]).all(dim=1)


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group",
                     eps: float = ADV_EPS, batch_std: float | None = None) -> torch.Tensor:
    """(N,) rewards → (N,) advantages, relative to the completion's group.

    scale="group": (r - mean_g) / (std_g + eps)   — the paper (std with Bessel's correction, as its code)
    scale="batch": (r - mean_g) / (std_batch + eps)
    scale="none":  (r - mean_g)                   — Dr. GRPO
    A zero-variance group gets exactly 0 in every mode. `batch_std`: the whole batch's std when `rewards`
    is one rank's share of it (data parallelism); by default the std of `rewards`.
    """
    if group_size < 2:
        raise ValueError("GRPO needs group_size >= 2")
    grouped = group_view(rewards.float(), group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale == "group":
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)
    elif scale == "batch":
        centred = centred / ((rewards.float().std() if batch_std is None else batch_std) + eps)
    elif scale != "none":
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return centred.reshape(-1)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """(N, T) × (N, T) → (N, T) per-token KL(π‖π_ref), k3 estimator: exp(d) − d − 1, d = ref − logp.

    Non-negative, zero where the two agree; its gradient w.r.t. logp is 1 − exp(d).
    """
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1.0


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None,
                advantages: torch.Tensor, mask: torch.Tensor, *, beta: float = 0.04,
                epsilon: float = 0.2, epsilon_high: float | None = None, loss_type: str = "grpo",
                max_completion_tokens: int | None = None, num_sequences: int | None = None,
                num_tokens: float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The GRPO objective for one (micro-)batch → (scalar loss, detached stats).

    logp, old_logp, ref_logp, mask: (N, T); advantages: (N,).
    Per token: −min(ρ·A, clip(ρ, 1−ε, 1+ε_high)·A) + β·KL,  ρ = exp(logp − old_logp).
    (With old_logp = logp.detach(), ρ ≡ 1 and this is the paper's on-policy loss.)

    Aggregation (`loss_type`):
      grpo    — Σ_i (1/|o_i|) Σ_t ℓ_it / num_sequences   (paper: per-sequence mean, then mean)
      dapo    — Σ_i Σ_t ℓ_it / num_tokens                  (token-level mean)
      dr_grpo — Σ_i Σ_t ℓ_it / (num_sequences · max_completion_tokens)
    `num_sequences` / `num_tokens` default to this batch's; pass the whole batch's counts when the
    batch is split for gradient accumulation, so the summed gradients equal the full-batch gradient.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    eps_low = epsilon
    eps_high = epsilon if epsilon_high is None else epsilon_high
    mask = mask.float()
    adv = advantages.unsqueeze(1)  # (N, 1)
    ratio = torch.exp(logp - old_logp)
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    per_token = -torch.min(ratio * adv, clipped * adv)  # (N, T)
    kl = k3_kl(logp, ref_logp) if ref_logp is not None else torch.zeros_like(logp)
    if beta:
        per_token = per_token + beta * kl

    n_seq = num_sequences if num_sequences is not None else logp.shape[0]
    if loss_type == "grpo":
        per_seq = (per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        loss = per_seq.sum() / max(n_seq, 1)
    elif loss_type == "dapo":
        n_tok = num_tokens if num_tokens is not None else mask.sum()
        loss = (per_token * mask).sum() / max(float(n_tok), 1.0)
    else:  # dr_grpo
        if not max_completion_tokens:
            raise ValueError("dr_grpo needs max_completion_tokens")
        loss = (per_token * mask).sum() / (max(n_seq, 1) * max_completion_tokens)

    with torch.no_grad():
        n_valid = mask.sum().clamp(min=1.0)
        is_clipped = ((ratio < 1.0 - eps_low) & (adv < 0)) | ((ratio > 1.0 + eps_high) & (adv > 0))
        stats = {
            "kl": (kl * mask).sum() / n_valid,
            "clip_ratio": (is_clipped.float() * mask).sum() / n_valid,
            "tokens": mask.sum(),
        }
    return loss, stats
