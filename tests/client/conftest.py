"""Helpers for the SDK tests: tiny valid datasets (PNG data URLs in Visual-RFT JSONL)."""

from __future__ import annotations

import base64
import io
import json

import pytest

CLS_GRADER = {"type": "visual_rft", "name": "visual_rft", "task": "classification"}
TINY_MODEL = "vrft/tiny-qwen2-vl"
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def png_data_url(rgb=(200, 0, 0), size=(16, 16)) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def visual_rft_jsonl(rows: int = 4) -> bytes:
    names = list(COLOURS)
    lines = []
    for i in range(rows):
        name = names[i % len(names)]
        lines.append(json.dumps({
            "image": png_data_url(COLOURS[name]),
            "problem": "What colour is this image? Output the thinking process in <think> </think> and final "
                       "answer in <answer> </answer> tags.",
            "solution": f"<answer>{name}</answer>",
        }))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def dataset_bytes() -> bytes:
    return visual_rft_jsonl()


@pytest.fixture
def dataset_path(tmp_path, dataset_bytes):
    path = tmp_path / "colours.jsonl"
    path.write_bytes(dataset_bytes)
    return path
