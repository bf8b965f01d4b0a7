"""Per-token log-probabilities of the completion tokens — without the full logits tensor.

The naïve way (`model(...).logits`, then log_softmax) materialises (N, P+T, V) logits: for 128
completions × 256 tokens × 152k vocabulary that is ~20 GB in fp32. We instead
1. run the trunk once for hidden states, no lm_head — one packed row per group, so each prompt
   is computed once for its G completions (packing.py);
2. keep only the hidden states that predict a *kept* completion token (M rows, M ≤ N·T);
3. project, log-softmax and gather `chunk_tokens` rows at a time, in fp32.
With grad enabled each chunk runs under activation checkpointing, so backward holds one chunk's
logits at a time (recomputing the projection, one extra lm_head matmul over completion tokens).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from workers.training.packing import group_rows, pack_groups, supports_packing
from workers.training.rollout import ImageInputs, Rollouts, backbone_and_head


def _chunk_logp(hidden: torch.Tensor, targets: torch.Tensor, head: torch.nn.Module, temperature: float,
                suppressed: list[int]) -> torch.Tensor:
    """(M, H) hidden, (M,) targets → (M,) log p(target) at `temperature`, in fp32."""
    logits = head(hidden).float()
    if temperature != 1.0:
        logits = logits / temperature
    if suppressed:  # tokens generation never samples: out of the normalisation too
        logits[:, suppressed] = float("-inf")
    return logits.gather(1, targets.unsqueeze(1)).squeeze(1) - torch.logsumexp(logits, dim=-1)


def completion_logprobs(model, rollouts: Rollouts, images: ImageInputs, *, temperature: float = 1.0,
                        chunk_tokens: int = 1024, suppressed_token_ids: list[int] | None = None,
                        share_prompt: bool = True) -> torch.Tensor:
    """(N, T) log-probs of `rollouts.completion_ids` under `model` (0 where the mask is 0).

    Differentiable when grad is enabled. `images` are the prompts' images (`rollout.image_features`);
    `rollouts.image_index` says which image each row uses. With `share_prompt` (and rows forming
    whole groups) each prompt runs through the trunk once for all its completions (packing.py);
    otherwise every row carries its own copy of the prompt. Both give the same numbers.
    """
    trunk, head = backbone_and_head(model)
    groups = group_rows(rollouts.image_index) if share_prompt and supports_packing(trunk) else None
    if groups is None:
        hidden = _full_hidden(trunk, rollouts, images)  # (N, T, H)
    else:
        hidden = _packed_hidden(trunk, rollouts, images, *groups)  # (N, T, H)
    return _token_logprobs(hidden, rollouts, head, temperature, chunk_tokens, list(suppressed_token_ids or []))


def _full_hidden(trunk, rollouts: Rollouts, images: ImageInputs) -> torch.Tensor:
    """Every row = its prompt + its completion: (N, T, H) states predicting completion token t."""
    prompt_len = rollouts.prompt_ids.shape[1]
    T = rollouts.completion_ids.shape[1]
    input_ids = torch.cat([rollouts.prompt_ids, rollouts.completion_ids], dim=1)  # (N, P+T)
    attention = torch.cat([rollouts.prompt_mask, rollouts.completion_mask.to(rollouts.prompt_mask.dtype)], dim=1)
    mm_types = torch.cat([rollouts.mm_token_type_ids, torch.zeros_like(rollouts.completion_ids)], dim=1)
    hidden = trunk(
        input_ids=input_ids, attention_mask=attention, mm_token_type_ids=mm_types,
        image_grid_thw=rollouts.image_grid_thw, use_cache=False,
        **images.for_rows(rollouts.image_index.tolist()),
    ).last_hidden_state  # (N, P+T, H)
    return hidden[:, prompt_len - 1: prompt_len - 1 + T]  # position P-1+t predicts completion token t


def _packed_hidden(trunk, rollouts: Rollouts, images: ImageInputs, starts: list[int], group_size: int) -> torch.Tensor:
    """One packed row per group (packing.py): (N, T, H) states predicting completion token t."""
    first = torch.tensor(starts, device=rollouts.prompt_ids.device)
    index = rollouts.image_index[first].tolist()
    packed = pack_groups(trunk, rollouts.prompt_ids[first], rollouts.prompt_mask[first],
                         rollouts.mm_token_type_ids[first], rollouts.image_grid_thw[first], index,
                         rollouts.completion_ids, group_size)
    hidden = trunk(
        input_ids=packed.input_ids, attention_mask=packed.attention_mask, position_ids=packed.position_ids,
        mm_token_type_ids=packed.mm_token_type_ids, image_grid_thw=packed.image_grid_thw, use_cache=False,
        **images.for_rows(index),
    ).last_hidden_state  # (B, L, H)
    G, T = packed.predicting.shape
    return hidden[:, packed.predicting.reshape(-1)].reshape(len(starts) * G, T, hidden.shape[-1])


def _token_logprobs(predicting: torch.Tensor, rollouts: Rollouts, head: torch.nn.Module, temperature: float,
                    chunk_tokens: int, suppressed: list[int]) -> torch.Tensor:
    """(N, T, H) predicting states → (N, T) log-probs of the kept completion tokens, `chunk_tokens` rows at a time."""
    keep = rollouts.completion_mask.bool()  # (N, T)
    rows = predicting[keep]  # (M, H)
    targets = rollouts.completion_ids[keep]  # (M,)
    pieces = []
    for start in range(0, rows.shape[0], chunk_tokens):
        h, t = rows[start:start + chunk_tokens], targets[start:start + chunk_tokens]
        if torch.is_grad_enabled():
            pieces.append(checkpoint(_chunk_logp, h, t, head, temperature, suppressed, use_reentrant=False))
        else:
            pieces.append(_chunk_logp(h, t, head, temperature, suppressed))
    out = torch.zeros(keep.shape, dtype=torch.float32, device=predicting.device)
    if pieces:
        out = out.masked_scatter(keep, torch.cat(pieces))
    return out
