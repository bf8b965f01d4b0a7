"""Examples in, prompts out: image decoding, the deterministic prompt order, the JSONL reader.

An example is `{"id": str, "prompt": str, "image": bytes | PIL.Image.Image, "item": dict}`; image
bytes are an encoded PNG/JPEG. The prompt order is a pure function of (seed, cursor): prompt number
k (counting from 0 over the whole run) is element k mod n of the permutation of epoch k // n. A
checkpoint therefore only needs the cursor to continue the same order.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image


def to_image(image: Any) -> Image.Image:
    """bytes (PNG/JPEG) or a PIL image → RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (bytes, bytearray, memoryview)):
        with Image.open(io.BytesIO(bytes(image))) as img:
            return img.convert("RGB")
    raise TypeError(f"example image must be bytes or a PIL image, got {type(image).__name__}")


class PromptOrder:
    """Epoch-wise shuffled, endless order of example indices, addressable by cursor."""

    def __init__(self, n: int, seed: int) -> None:
        if n < 1:
            raise ValueError("the training data is empty")
        self.n, self.seed = n, seed
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms[epoch] = torch.randperm(self.n, generator=gen).tolist()
        return self._perms[epoch]

    def take(self, cursor: int, count: int) -> list[int]:
        return [self._perm(k // self.n)[k % self.n] for k in range(cursor, cursor + count)]


def _decode_image_ref(ref: str, base: Path) -> bytes:
    if ref.startswith("data:"):
        _, _, payload = ref.partition(",")
        return base64.b64decode(payload)
    path = Path(ref)
    return (path if path.is_absolute() else base / path).read_bytes()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The CLI's dataset format, one JSON object per line:

        {"id": "ex-1", "prompt": "What colour is this?", "image": "data:image/png;base64,…",
         "item": {"solution": "<answer>red</answer>"}}

    `image` is a data URL or a file path (relative paths are relative to the JSONL file); `id`
    defaults to the line number, `item` to {}. For SFT a row may instead be a chat:
    `{"messages": [...], "images": [data URL or path, ...]}` (see sft.py). Images stay encoded bytes until a
    batch needs them.
    """
    path = Path(path)
    examples = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if "messages" in row:  # a chat row (SFT): images in the order of their {"type": "image"} parts
                examples.append({"id": str(row.get("id", number)), "messages": row["messages"],
                                 "images": [_decode_image_ref(ref, path.parent) for ref in row.get("images", [])],
                                 "item": row.get("item", {})})
                continue
            examples.append({"id": str(row.get("id", number)), "prompt": row["prompt"],
                             "image": _decode_image_ref(row["image"], path.parent), "item": row.get("item", {})})
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from exc
    return examples


def check_examples(examples: Sequence[dict[str, Any]]) -> None:
    for i, ex in enumerate(examples[:1000]):
        missing = {"prompt", "image"} - set(ex)
        if missing:
            raise ValueError(f"example {i} lacks {sorted(missing)}")
