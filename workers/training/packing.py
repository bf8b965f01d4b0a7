"""One prompt, G completions, one sequence: the layout shared by the log-prob passes and the engine.

The G completions of a prompt share its keys/values exactly (same tokens, same image features, same
weights), so a pass that feeds every completion its own copy of the prompt repeats that work G times
(VISUAL_RFT.md, "Where a step's work goes": 108k tokens per pass where 42k are distinct). Here a
group is *packed* into one row

    [prompt (left-padded to P) | completion 1 (T) | completion 2 (T) | … | completion G (T)]

with a 4-D attention mask: the prompt is causal over itself; completion k sees the whole prompt and
is causal inside its own block; blocks never see each other. Positions (multimodal RoPE) are the
model's own for the prompt and continue from the prompt's next position in every block, exactly as
decoding assigns them. One ordinary forward over the packed row therefore gives every completion
token the same hidden state as the full recompute, and gradients from all G completions flow back
through the one copy of the prompt's activations by plain autograd.

Why this mechanism and not the others:
- The model's past-key-values API (prompt pass → cache → completion pass) needs the cache inside
  the autograd graph, and Hugging Face's gradient-checkpointing layers drop the cache in training
  (they would write it twice on the recompute), so it cannot serve the policy pass with checkpointing.
- A custom attention path would fork each family's decoder (Qwen3-VL's deepstack included).
- Flex-attention with a prefix mask is the same idea as this mask with block sparsity; it needs
  `torch.compile` to be fast and gains nothing on CPU. A dense boolean mask runs with PyTorch SDPA
  (and the eager kernel) on every device today; its cost is attention FLOPs over masked pairs —
  for the 2B workload about 15 % of a pass, against the 2.6× the repeated prompt costs. A
  block-sparse kernel is where that last 15 % would come from.
Flash-attention-2 takes no custom mask: models loaded with it use the full recompute
(`supports_packing`).

Every query row also attends to itself, so that a left-padding row never has an empty softmax
(NaN there would reach real rows through the masked-out values: 0 × NaN = NaN).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch


def supports_packing(trunk) -> bool:
    """Whether the model's attention takes a custom 4-D mask (SDPA and eager do; flash-attention does not)."""
    return getattr(trunk.config, "_attn_implementation", "sdpa") in ("sdpa", "eager")


def prompt_positions(trunk, input_ids: torch.Tensor, mm_token_type_ids: torch.Tensor, image_grid_thw: torch.Tensor,
                     attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's multimodal RoPE positions of left-padded prompts → ((3, B, P), next position (B,)).

    `next` is where generated text continues: the largest prompt position + 1 (all three axes advance
    together for text), which is what the model's own decoding uses (its `rope_deltas`). The model's
    `get_rope_index` is called directly so that no cached `rope_deltas` state is read or left behind.
    """
    accepted = inspect.signature(trunk.get_rope_index).parameters  # older transformers take no mm_token_type_ids
    extra = {"mm_token_type_ids": mm_token_type_ids} if "mm_token_type_ids" in accepted else {}
    positions, _ = trunk.get_rope_index(input_ids=input_ids, image_grid_thw=image_grid_thw,
                                        attention_mask=attention_mask, **extra)
    positions = positions.masked_fill(~attention_mask.bool()[None], 0)  # pads: any finite value
    return positions, positions.amax(dim=(0, 2)) + 1


def group_mask(prompt_mask: torch.Tensor, group_size: int, block: int,
               dtype: torch.dtype | None = None) -> torch.Tensor:
    """(B, P) prompt mask → (B, 1, L, L) attention mask of packed rows, L = P + group_size × block.

    Boolean (True = may attend) for SDPA; with `dtype`, additive (0 / dtype's min) for eager attention.
    """
    B, P = prompt_mask.shape
    L = P + group_size * block
    device = prompt_mask.device
    segment = torch.cat([torch.zeros(P, dtype=torch.long, device=device),
                         torch.arange(1, group_size + 1, device=device).repeat_interleave(block)])  # (L,) 0 = prompt
    index = torch.arange(L, device=device)
    causal = index[:, None] >= index[None, :]  # (L, L)
    key_in_prompt = (segment == 0)[None, :]
    query_in_block = (segment > 0)[:, None]
    same_block = (segment[:, None] == segment[None, :]) & ~key_in_prompt
    structure = (key_in_prompt & (causal | query_in_block)) | (same_block & causal)  # (L, L)
    keys_real = torch.cat([prompt_mask.bool(), torch.ones(B, L - P, dtype=torch.bool, device=device)], dim=1)
    mask = (structure[None] & keys_real[:, None, :]) | torch.eye(L, dtype=torch.bool, device=device)[None]
    mask = mask[:, None]  # (B, 1, L, L)
    if dtype is None:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill_(~mask, torch.finfo(dtype).min)


@dataclass
class PackedGroups:
    """Groups of a rollout batch, one packed row each (see the module docstring)."""

    input_ids: torch.Tensor  # (B, L) prompt then G completion blocks of T
    position_ids: torch.Tensor  # (3, B, L)
    attention_mask: torch.Tensor  # (B, 1, L, L)
    mm_token_type_ids: torch.Tensor  # (B, L)
    image_grid_thw: torch.Tensor  # (B, 3)
    prompt_index: list[int]  # (B,) which image/prompt each packed row holds
    predicting: torch.Tensor  # (G, T) the packed column whose hidden state predicts completion token t


def group_rows(image_index: torch.Tensor) -> tuple[list[int], int] | None:
    """Rows → (first row of each group, group size) when the rows are whole, equal, contiguous groups."""
    ids = image_index.tolist()
    if not ids:
        return None
    starts = [0] + [r for r in range(1, len(ids)) if ids[r] != ids[r - 1]]
    size = len(ids) // len(starts)
    if size * len(starts) != len(ids) or any(ids[s:s + size] != [ids[s]] * size for s in starts):
        return None
    return starts, size


def pack_groups(trunk, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, mm_token_type_ids: torch.Tensor,
                image_grid_thw: torch.Tensor, prompt_index: list[int], completion_ids: torch.Tensor,
                group_size: int) -> PackedGroups:
    """B prompts (B, P) and their B × G completions (B·G, T), group-major → `PackedGroups`."""
    B, P = prompt_ids.shape
    T = completion_ids.shape[1]
    G = group_size
    positions, next_position = prompt_positions(trunk, prompt_ids, mm_token_type_ids, image_grid_thw, prompt_mask)
    offsets = torch.arange(T, device=prompt_ids.device).repeat(G)  # (G·T,) token t of every block
    block_positions = (next_position[:, None] + offsets[None]).expand(3, B, G * T)
    device = prompt_ids.device
    predicting = P + torch.arange(G, device=device)[:, None] * T + torch.arange(T, device=device) - 1
    predicting[:, 0] = P - 1  # every block's first token is predicted by the prompt's last position
    attn = getattr(trunk.config, "_attn_implementation", "sdpa")
    dtype = None if attn == "sdpa" else next(trunk.parameters()).dtype
    return PackedGroups(
        input_ids=torch.cat([prompt_ids, completion_ids.reshape(B, G * T)], dim=1),
        position_ids=torch.cat([positions, block_positions], dim=2),
        attention_mask=group_mask(prompt_mask, G, T, dtype),
        mm_token_type_ids=torch.cat([mm_token_type_ids, torch.zeros_like(completion_ids).reshape(B, G * T)], dim=1),
        image_grid_thw=image_grid_thw, prompt_index=prompt_index, predicting=predicting,
    )
