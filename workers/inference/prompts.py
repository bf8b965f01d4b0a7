"""Chat messages → model inputs: the processor's chat template over every turn, images in order.

The request's messages arrive already checked by the API (roles, parts, decodable images); here
they become a `PromptBatch` the rollout engine decodes (one image per prompt, the shape evaluation
uses) or, for text-only and multi-image prompts, plain processor output for `generate`
(see workers/inference/decode.py for why).

A user turn whose parts are [image, text] templates exactly as the trainer's `chat_prompt` does, so
the chat answer for a validation row is the evaluation's answer for it (tests/chat).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from workers.training.rollout import PromptBatch


@dataclass
class ChatPrompt:
    """One request's prompt: the templated text and its images (decoded, RGB), in order."""

    text: str
    images: list[Image.Image]


def _image(data: str) -> Image.Image:
    with Image.open(io.BytesIO(base64.b64decode(data))) as img:
        return img.convert("RGB")


def chat_prompt(processor, messages: list[dict[str, Any]]) -> ChatPrompt:
    """Messages (`content` a string or parts `{"type": "text", "text"}` / `{"type": "image", "data": base64}`)
    → the template's text, ending with the assistant's turn opened, and the images in order."""
    templated, images = [], []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            templated.append({"role": message["role"], "content": [{"type": "text", "text": content}]})
            continue
        parts = []
        for part in content:
            if part["type"] == "image":
                images.append(_image(part["data"]))
                parts.append({"type": "image"})
            else:
                parts.append({"type": "text", "text": part["text"]})
        templated.append({"role": message["role"], "content": parts})
    text = processor.apply_chat_template(templated, add_generation_prompt=True, tokenize=False)
    return ChatPrompt(text, images)


def encode(processor, prompts: list[ChatPrompt], device: torch.device) -> dict[str, torch.Tensor]:
    """The processor's tensors for prompts (left-padded), images of all prompts concatenated."""
    images = [img for p in prompts for img in p.images]
    enc = processor(images=images or None, text=[p.text for p in prompts], return_tensors="pt", padding=True)
    out = {k: v.to(device) for k, v in enc.items() if isinstance(v, torch.Tensor)}
    if "mm_token_type_ids" not in out:  # older processors do not return it
        out["mm_token_type_ids"] = (out["input_ids"] == processor.image_token_id).long()
    return out


def prompt_batch(processor, prompts: list[ChatPrompt], device: torch.device) -> PromptBatch:
    """A `PromptBatch` for prompts with exactly one image each (what the engine decodes)."""
    if any(len(p.images) != 1 for p in prompts):
        raise ValueError("prompt_batch takes prompts with exactly one image each")
    enc = encode(processor, prompts, device)
    patch = processor.image_processor.patch_size
    grid = enc["image_grid_thw"]
    return PromptBatch(
        examples=[{} for _ in prompts], texts=[p.text for p in prompts], input_ids=enc["input_ids"],
        attention_mask=enc["attention_mask"], mm_token_type_ids=enc["mm_token_type_ids"],
        pixel_values=enc["pixel_values"], image_grid_thw=grid,
        image_sizes=[list(p.images[0].size) for p in prompts],
        resized_sizes=[[int(w) * patch, int(h) * patch] for _, h, w in grid.tolist()])
