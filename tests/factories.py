"""Small real datasets made on the fly (no binary fixtures in the repo)."""

from __future__ import annotations

import base64
import io
import json

from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220)}
QUESTION = ("What colour is this image? Output the thinking process in <think> </think> and final answer in "
            "<answer> </answer> tags.")


def png_bytes(colour=(255, 0, 0), size=(32, 32), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def visual_rft_rows(n: int = 6, size=(32, 32)) -> list[dict]:
    names = list(COLOURS)
    rows = []
    for i in range(n):
        name = names[i % len(names)]
        rows.append({"image": data_url(png_bytes(COLOURS[name], size)), "problem": QUESTION,
                     "solution": f"<answer>{name}</answer>"})
    return rows


def openai_rft_rows(n: int = 4) -> list[dict]:
    names = list(COLOURS)
    rows = []
    for i in range(n):
        name = names[i % len(names)]
        rows.append({
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": QUESTION},
                {"type": "image_url", "image_url": {"url": data_url(png_bytes(COLOURS[name]))}},
            ]}],
            "solution": f"<answer>{name}</answer>",
            "label": name,
        })
    return rows


ANSWERS = {"red": "R1", "green": "G22", "blue": "B333"}  # distinct lengths: a constant answer cannot pass


def chat_rows(n: int = 6, size=(32, 32)) -> list[dict]:
    """OpenAI supervised chat rows: a user turn with the image and a question, the answer to learn."""
    names = list(COLOURS)
    rows = []
    for i in range(n):
        name = names[i % len(names)]
        image = {"type": "image_url", "image_url": {"url": data_url(png_bytes(COLOURS[name], size))}}
        rows.append({"messages": [
            {"role": "user", "content": [image, {"type": "text", "text": "Colour code?"}]},
            {"role": "assistant", "content": ANSWERS[name]}], "solution": ANSWERS[name]})
    return rows


def jsonl(rows: list[dict]) -> bytes:
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


CLASSIFICATION_GRADER = {"type": "visual_rft", "name": "visual_rft", "task": "classification"}


def upload(client, content: bytes, filename: str = "train.jsonl", purpose: str = "fine-tune", headers=None):
    return client.post("/v1/files", files={"file": (filename, content, "application/octet-stream")},
                       data={"purpose": purpose}, headers=headers or {})


def supervised_body(training_file: str, **overrides) -> dict:
    body = {"model": "vrft/tiny-qwen2-vl", "training_file": training_file,
            "method": {"type": "supervised", "supervised": {"hyperparameters": {"max_steps": 2, "batch_size": 2}}}}
    body.update(overrides)
    return body


def job_body(training_file: str, **overrides) -> dict:
    body = {
        "model": "vrft/tiny-qwen2-vl",
        "training_file": training_file,
        "method": {"type": "reinforcement", "reinforcement": {
            "grader": CLASSIFICATION_GRADER,
            "hyperparameters": {"max_steps": 2, "batch_size": 2, "group_size": 2, "max_completion_tokens": 8},
        }},
    }
    body.update(overrides)
    return body
