"""Pre-flight memory estimate of a GRPO step: will this model at this batch fit the device?

An estimate from the architecture's shapes, not a measurement: weights + LoRA/optimizer state + the
rollout's KV cache + the activations the policy pass keeps for backward + the log-prob chunk. It is
meant to say "7B at 16 × 8 × 1024 does not fit 80 GB" before a job queues, not to predict to the
last GiB. The terms, per optimizer micro-batch (prompts_per_step / grad_accum prompts, packed one row
per group as packing.py lays them out, L = prompt + G × completion tokens):

- weights: every parameter at the weight dtype; LoRA parameters in fp32 with grads and AdamW's
  two moments (4 × 4 bytes each);
- KV cache of the rollout: rows × (prompt + completion) × layers × 2 × kv_heads × head_dim;
- activations kept for backward, per token per decoder layer, at the weight dtype: without
  checkpointing ≈ 10 × hidden + 7 × intermediate elements (norm outputs, q/k/v/o and MLP inputs and
  outputs, plus the inputs LoRA's dropout keeps for its 7 adapted linears); with checkpointing only
  the layer input (hidden) is kept, plus one layer's full set during its recompute;
- the attention mask of the packed rows (one byte per query × key pair) — SDPA's memory-efficient
  kernel takes it without materialising scores;
- the log-prob chunk: `logit_chunk_tokens` × vocabulary fp32 logits, about three live copies
  (logits, log-softmax, gradient).
The vision tower runs once per prompt under no_grad (LoRA never touches it), so it adds only its
weights and a transient forward.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

GIB = 2**30


@dataclass(frozen=True)
class MemoryEstimate:
    weights_gib: float
    lora_and_optimizer_gib: float
    kv_cache_gib: float
    activations_gib: float
    attention_mask_gib: float
    logits_gib: float
    total_gib: float
    device_gib: float | None  # what the device offers (None: unknown, e.g. CPU)
    fits: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _text(config) -> Any:
    return getattr(config, "text_config", None) or config


def estimate(config, *, parameters: int, lora_parameters: int, dtype_bytes: int, prompts_per_step: int,
             group_size: int, grad_accum: int, prompt_tokens: int, completion_tokens: int,
             gradient_checkpointing: bool, logit_chunk_tokens: int, device_bytes: int | None = None) -> MemoryEstimate:
    """The estimate for one step of the given shapes (see the module docstring for the terms)."""
    text = _text(config)
    hidden, inter, layers = text.hidden_size, text.intermediate_size, text.num_hidden_layers
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    vocab = text.vocab_size

    rows = prompts_per_step * group_size
    kv = rows * (prompt_tokens + completion_tokens) * layers * 2 * kv_heads * head_dim * dtype_bytes
    micro_prompts = max(1, prompts_per_step // max(1, grad_accum))
    packed_len = prompt_tokens + group_size * completion_tokens
    tokens = micro_prompts * packed_len
    full_layer = (10 * hidden + 7 * inter) * dtype_bytes  # per token
    if gradient_checkpointing:
        activations = tokens * (layers * hidden * dtype_bytes + full_layer)
    else:
        activations = tokens * layers * full_layer
    mask = micro_prompts * packed_len * packed_len
    logits = 3 * logit_chunk_tokens * vocab * 4
    weights = parameters * dtype_bytes
    lora = lora_parameters * 16
    # The rollout (KV cache) and the loss passes (activations) do not overlap in time: take the larger.
    total = weights + lora + max(kv, activations + mask + logits)
    device_gib = device_bytes / GIB if device_bytes else None
    return MemoryEstimate(
        weights_gib=weights / GIB, lora_and_optimizer_gib=lora / GIB, kv_cache_gib=kv / GIB,
        activations_gib=activations / GIB, attention_mask_gib=mask / GIB, logits_gib=logits / GIB,
        total_gib=total / GIB, device_gib=device_gib,
        fits=None if device_gib is None else total / GIB <= 0.9 * device_gib,  # 10 % for the allocator, CUDA context
    )


def advice(result: MemoryEstimate) -> str | None:
    """The knobs to turn when the estimate does not fit (None when it does or the device is unknown)."""
    if result.fits is not False:
        return None
    return (f"estimated {result.total_gib:.1f} GiB > {result.device_gib:.0f} GiB on this device: turn on "
            "gradient_checkpointing, raise gradient_accumulation_steps, lower batch_size, group_size or "
            "max_completion_tokens, or lower max_pixels (fewer image tokens per prompt)")


def estimate_for_job(config, model) -> MemoryEstimate:
    """The estimate for a job's full-size step (`config`: its TrainConfig) on `model` (the peft model).

    Prompt length is bounded from above: the image at `max_pixels` (one token per merged patch) plus
    64 text tokens; completions at `max_completion_tokens`."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    vision = getattr(base.config, "vision_config", None)
    patch = getattr(vision, "patch_size", 14) * getattr(vision, "spatial_merge_size", 2)
    params = list(model.parameters())
    device = params[0].device
    return estimate(
        base.config, parameters=sum(p.numel() for p in params),
        lora_parameters=sum(p.numel() for p in params if p.requires_grad), dtype_bytes=params[0].element_size(),
        prompts_per_step=config.prompts_per_step, group_size=config.group_size, grad_accum=config.grad_accum,
        prompt_tokens=config.max_pixels // patch**2 + 64, completion_tokens=config.max_completion_tokens,
        gradient_checkpointing=config.gradient_checkpointing, logit_chunk_tokens=config.logit_chunk_tokens,
        device_bytes=torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None)
