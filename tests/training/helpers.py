"""Small data builders and reward functions shared by the training tests."""

from __future__ import annotations

import io

from PIL import Image

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def png(colour: tuple[int, int, int], size: tuple[int, int] = (56, 56)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def colour_examples() -> list[dict]:
    """One solid-colour image per colour, the same question for all, the colour's index as label."""
    return [{"id": name, "prompt": "Colour?", "image": png(rgb), "item": {"label": i, "solution": name}}
            for i, (name, rgb) in enumerate(COLOURS.items())]


def byte_value_reward(samples, items):
    """A dense reward (first byte / 255): groups almost never have zero variance."""
    rewards = [(s["output_text"].encode()[0] / 255.0) if s["output_text"] else 0.0 for s in samples]
    return rewards, {"byte_value": rewards}, {"empty": [not s["output_text"] for s in samples]}


def constant_reward(samples, items):
    """Every completion scores 1: every group has zero variance."""
    return [1.0] * len(samples), {"constant": [1.0] * len(samples)}, {}


def colour_code_reward(samples, items):
    """1 when the answer's first character names the image's colour by ord(c) mod 3 (ASCII only)."""

    def colour(text: str) -> int:
        return ord(text[0]) % 3 if text and ord(text[0]) < 128 else -1

    rewards = [1.0 if colour(s["output_text"]) == item["label"] else 0.0
               for s, item in zip(samples, items, strict=True)]
    return rewards, {"correct": rewards}, {}
