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


def tiny_policy_batch(model_cache, family: str, *, gradient_checkpointing: bool = False):
    """(loaded, peft model with a non-trivial adapter, prompt batch, encoded images) on a tiny model.

    The prompts differ in length and image size, so left padding and per-prompt positions matter."""
    import torch

    from workers.training.lora import attach_lora
    from workers.training.model import load_model
    from workers.training.rollout import image_features, prepare_prompts

    torch.manual_seed(0)
    loaded = load_model(f"vrft/tiny-{family}", cache_dir=model_cache)
    model = attach_lora(loaded.model, r=4, alpha=8, dropout=0.0, seed=0, gradient_checkpointing=gradient_checkpointing)
    with torch.no_grad():  # LoRA B starts at 0: give it values so the adapter changes every layer
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.eval()
    examples = colour_examples()
    examples[1] = dict(examples[1], prompt="What colour is this picture, in one word?",
                       image=png((0, 255, 0), (84, 56)))
    batch = prepare_prompts(loaded.processor, examples, torch.device("cpu"))
    return loaded, model, batch, image_features(model, batch)
