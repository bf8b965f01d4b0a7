"""Sampling: prompts → G completions each, in one batched `generate`, with EOS masks.

Speed choices:
- All prompts × G go through one `generate` call (KV cache on, prompts left-padded).
- Each prompt's image goes through the vision tower once per step (`image_features`); the
  encoded features are repeated per completion as references to the same tensors (no copy of
  pixel values) and handed to `generate` and to the log-prob passes via the model's
  `mm_encoder_outputs` argument. This is sound because LoRA never touches the vision tower: the
  features are the same for the policy, the old policy and the reference. (Fallback for a
  transformers without that argument: pixel rows repeated per completion, see `ImageInputs`.)
- Prompts are never truncated, so generation and log-probs see the same prompt (one of the
  original code's defects).
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

import torch
from transformers import GenerationConfig

from workers.training.algo import completion_mask
from workers.training.data import to_image


@dataclass
class PromptBatch:
    examples: list[dict[str, Any]]
    texts: list[str]  # chat-templated prompt strings
    input_ids: torch.Tensor  # (B, P) left-padded
    attention_mask: torch.Tensor  # (B, P)
    mm_token_type_ids: torch.Tensor  # (B, P) 1 at image placeholder tokens
    pixel_values: torch.Tensor  # (patches, D) all images' patches, concatenated
    image_grid_thw: torch.Tensor  # (B, 3) one image per prompt
    image_sizes: list[list[int]]  # original [w, h] per prompt
    resized_sizes: list[list[int]]  # [w, h] after the processor's resize (what Qwen2.5-VL's pixels mean)


@dataclass
class Rollouts:
    """N = B × G completions; row r belongs to prompt r // G."""

    prompt_ids: torch.Tensor  # (N, P)
    prompt_mask: torch.Tensor  # (N, P)
    mm_token_type_ids: torch.Tensor  # (N, P)
    image_grid_thw: torch.Tensor  # (N, 3)
    image_index: torch.Tensor  # (N,) which prompt/image each row belongs to
    completion_ids: torch.Tensor  # (N, T)
    completion_mask: torch.Tensor  # (N, T) float, 1 up to and including the first EOS
    texts: list[str]  # decoded completions (EOS and special tokens dropped)


def chat_prompt(processor, example: dict[str, Any]) -> str:
    """The conversation the model answers, through its chat template, ready for the answer: an OpenAI
    chat row's own turns (system/developer prompts and the parts' order as the file has them — what
    chat completions templates for the same messages), else one user turn of [image, text]."""
    messages = example.get("messages") or [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": example["prompt"]}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def prepare_prompts(processor, examples: list[dict[str, Any]], device: torch.device) -> PromptBatch:
    images = [to_image(ex["image"]) for ex in examples]
    texts = [chat_prompt(processor, ex) for ex in examples]
    enc = processor(images=images, text=texts, return_tensors="pt", padding=True)
    patch = processor.image_processor.patch_size
    grid = enc["image_grid_thw"]
    resized = [[int(w) * patch, int(h) * patch] for _, h, w in grid.tolist()]
    # 1 at image placeholders; older transformers' processors do not return it, so derive it
    mm_types = enc.get("mm_token_type_ids")
    if mm_types is None:
        mm_types = (enc["input_ids"] == processor.image_token_id).long()
    return PromptBatch(
        examples=list(examples), texts=texts,
        input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device),
        mm_token_type_ids=mm_types.to(device), pixel_values=enc["pixel_values"].to(device),
        image_grid_thw=grid.to(device), image_sizes=[list(img.size) for img in images], resized_sizes=resized,
    )


def backbone_and_head(model) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the VLM trunk that returns hidden states, the lm_head) of a plain or peft-wrapped model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model, base.lm_head


@dataclass
class ImageInputs:
    """The prompts' images, ready for the model for any rows (completions) of the batch.

    Normally `features` holds the vision tower's output, computed once (`image_features`). Where the
    installed transformers predates the `mm_encoder_outputs` argument, `features` is None and the
    fallback repeats each image's patch rows per completion, so the tower runs in every forward:
    slower, same numbers.
    """

    features: Any | None  # the model's encoder output object (pooler_output per image, …)
    pixel_chunks: list[torch.Tensor]  # per image: its (patches, D) rows of pixel_values

    def for_rows(self, image_index: list[int]) -> dict[str, Any]:
        if self.features is not None:
            return {"mm_encoder_outputs": {"image": select_features(self.features, image_index)}}
        return {"pixel_values": torch.cat([self.pixel_chunks[i] for i in image_index])}


def supports_encoder_outputs(model) -> bool:
    trunk, _ = backbone_and_head(model)
    return "mm_encoder_outputs" in inspect.signature(trunk.forward).parameters


@torch.no_grad()
def image_features(model, batch: PromptBatch, *, encode_once: bool = True) -> ImageInputs:
    """Run the vision tower once for the batch's images (when the model allows) → `ImageInputs`."""
    sizes = batch.image_grid_thw.prod(-1).tolist()
    chunks = list(torch.split(batch.pixel_values, sizes))
    if not (encode_once and supports_encoder_outputs(model)):
        return ImageInputs(None, chunks)
    trunk, _ = backbone_and_head(model)
    out = trunk.get_image_features(batch.pixel_values, batch.image_grid_thw, return_dict=True)
    out.last_hidden_state = None  # pre-merger states: never used again, free them
    return ImageInputs(out, chunks)


def select_features(features, image_index: list[int]):
    """A new encoder output holding image `i` for each entry of `image_index` (tensors shared, not copied).

    Qwen2-VL/2.5-VL carry `pooler_output` (one tensor per image); Qwen3-VL also carries
    `deepstack_features` (per layer, one tensor per image). A fresh object each time, because
    `generate` rewrites the one it is given.
    """
    changes = {"pooler_output": tuple(features.pooler_output[i] for i in image_index)}
    if getattr(features, "deepstack_features", None) is not None:
        changes["deepstack_features"] = [tuple(layer[i] for i in image_index) for layer in features.deepstack_features]
    fresh = type(features)(**{k: v for k, v in features.items()})
    for key, value in changes.items():
        setattr(fresh, key, value)
    return fresh


@torch.no_grad()
def generate_rollouts(model, batch: PromptBatch, images: ImageInputs, *, tokenizer, group_size: int,
                      max_new_tokens: int, eos_token_ids: list[int], pad_token_id: int, temperature: float = 1.0,
                      top_p: float = 1.0, do_sample: bool = True,
                      suppressed_token_ids: list[int] | None = None) -> Rollouts:
    """Sample `group_size` completions per prompt (greedy when do_sample=False) in one generate call."""
    B = batch.input_ids.shape[0]
    index = torch.arange(B, device=batch.input_ids.device).repeat_interleave(group_size)  # (N,)
    prompt_ids = batch.input_ids[index]
    prompt_mask = batch.attention_mask[index]
    mm_types = batch.mm_token_type_ids[index]
    grid = batch.image_grid_thw[index]
    # A fresh config: a checkpoint's own generation_config (Qwen2-VL-Instruct ships top_k=1,
    # temperature 0.01) must not change what GRPO samples.
    gen_config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature if do_sample else None,
        top_p=top_p if do_sample else None, top_k=0 if do_sample else None, eos_token_id=list(eos_token_ids),
        pad_token_id=pad_token_id, suppress_tokens=list(suppressed_token_ids or []) or None, use_cache=True)
    out = model.generate(
        input_ids=prompt_ids, attention_mask=prompt_mask, mm_token_type_ids=mm_types, image_grid_thw=grid,
        generation_config=gen_config, **images.for_rows(index.tolist()))
    completion_ids = out[:, prompt_ids.shape[1]:]
    if completion_ids.shape[1] == 0:  # nothing generated at all (max_new_tokens reached 0)
        completion_ids = torch.full((prompt_ids.shape[0], 1), pad_token_id, device=out.device)
    mask = completion_mask(completion_ids, eos_token_ids)
    texts = decode_completions(tokenizer, completion_ids, mask, eos_token_ids)
    return Rollouts(prompt_ids, prompt_mask, mm_types, grid, index, completion_ids, mask, texts)


def decode_completions(tokenizer, ids: torch.Tensor, mask: torch.Tensor, eos_ids: list[int]) -> list[str]:
    """(N, T) ids + mask → texts: the kept tokens minus EOS, special tokens skipped."""
    texts = []
    for row, keep in zip(ids.tolist(), mask.tolist(), strict=True):
        tokens = [t for t, k in zip(row, keep, strict=True) if k and t not in eos_ids]
        texts.append(tokenizer.decode(tokens, skip_special_tokens=True))
    return texts


def subset(rollouts: Rollouts, rows: torch.Tensor) -> Rollouts:
    """The rows `rows` of every per-completion field, without the padding columns none of them uses
    (leading prompt padding, trailing completion padding): shorter sequences for the loss passes."""
    texts = [rollouts.texts[i] for i in rows.tolist()]
    fields = {f.name: getattr(rollouts, f.name)[rows] for f in dataclasses.fields(rollouts) if f.name != "texts"}
    used_prompt = fields["prompt_mask"].bool().any(dim=0)
    first = int(used_prompt.nonzero()[0]) if used_prompt.any() else 0
    last = max(int(fields["completion_mask"].sum(dim=1).max()), 1)
    for key in ("prompt_ids", "prompt_mask", "mm_token_type_ids"):
        fields[key] = fields[key][:, first:]
    for key in ("completion_ids", "completion_mask"):
        fields[key] = fields[key][:, :last]
    return Rollouts(**fields, texts=texts)
