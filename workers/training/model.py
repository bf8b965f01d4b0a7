"""Load a Qwen VL model (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) and its processor from a local folder.

All family differences live in `FAMILIES`; the rest of the trainer asks that map, never the model
type. The coordinate convention matters to graders: Qwen2-VL and Qwen3-VL answer boxes in integers
normalised to 0–1000, Qwen2.5-VL in pixels of the *resized* image (see VISUAL_RFT.md, "Coordinates").
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from app import catalog
from workers.training.processor import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, VrftProcessor, load_processor
from workers.training.tiny import TINY_NAMES, resolve_model


@dataclass(frozen=True)
class Family:
    model_types: tuple[str, ...]  # config.model_type values of this family
    coords: str  # how the model writes boxes: "norm1000" | "pixels_resized"
    eos_tokens: tuple[str, ...]  # tokens that end an assistant turn
    pad_token: str
    image_placeholder: str  # what the chat template puts where the image goes


# What only the trainer needs: (eos_tokens, pad_token, image_placeholder) per family.
_QWEN_TOKENS = (("<|im_end|>", "<|endoftext|>"), "<|endoftext|>", "<|vision_start|><|image_pad|><|vision_end|>")
_TOKENS = {"qwen2-vl": _QWEN_TOKENS, "qwen2.5-vl": _QWEN_TOKENS, "qwen3-vl": _QWEN_TOKENS}

# Names, model types and answer coords come from the API's table (app.catalog, no torch), so the
# API and the trainer cannot disagree on them; a family missing from _TOKENS fails at import.
FAMILIES: dict[str, Family] = {
    name: Family(fam.model_types, fam.answer_coords, *_TOKENS[name]) for name, fam in catalog.FAMILIES.items()
}


def family_of(model_path_or_config: Any) -> str:
    """The family name (`qwen2-vl`, `qwen2.5-vl`, `qwen3-vl`) of a folder, tiny name, config or dict."""
    source = model_path_or_config
    if isinstance(source, (str, Path)):
        if str(source) in TINY_NAMES:
            return TINY_NAMES[str(source)]
        config_file = Path(source) / "config.json"
        if not config_file.is_file():
            raise ValueError(f"no config.json in {source}")
        source = json.loads(config_file.read_text())
    model_type = source.get("model_type") if isinstance(source, dict) else getattr(source, "model_type", None)
    for name, family in FAMILIES.items():
        if model_type in family.model_types:
            return name
    raise ValueError(f"unsupported model type {model_type!r}; supported: "
                     + ", ".join(t for f in FAMILIES.values() for t in f.model_types))


def coords_for(family: str) -> str:
    """The box convention a family's answers use: `norm1000` or `pixels_resized`."""
    return FAMILIES[family].coords


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """bf16 on GPU, fp32 on CPU (CPU bf16 matmuls are slow and lose the small LoRA updates)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
            "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}[dtype]


def pick_attention(device: torch.device, dtype: torch.dtype) -> str:
    """flash-attn 2 when installed and usable (CUDA, half precision), else PyTorch SDPA."""
    if device.type == "cuda" and dtype in (torch.bfloat16, torch.float16) and importlib.util.find_spec("flash_attn"):
        return "flash_attention_2"
    return "sdpa"


@dataclass
class LoadedModel:
    model: torch.nn.Module  # the *ForConditionalGeneration model (LoRA is attached later)
    processor: VrftProcessor
    family: str
    path: Path
    eos_token_ids: list[int]
    pad_token_id: int
    # Image/video placeholder ids: never sampled (an extra placeholder in a completion breaks the
    # next forward pass: placeholders must match image features one to one), and excluded from
    # the log-prob normalisation so that log-probs describe the distribution actually sampled.
    suppressed_token_ids: list[int]


def load_model(model: str | Path, *, device: str = "auto", dtype: str = "auto",
               min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS,
               cache_dir: str | Path | None = None, attn_implementation: str | None = None) -> LoadedModel:
    """Load model + processor. `model` is a folder, a built-in tiny name, or a cached hub id."""
    from transformers import AutoModelForImageTextToText

    path = resolve_model(model, cache_dir)
    family = family_of(path)
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    net = AutoModelForImageTextToText.from_pretrained(
        str(path), dtype=torch_dtype, attn_implementation=attn_implementation or pick_attention(dev, torch_dtype))
    net.to(dev)
    processor = load_processor(path, min_pixels=min_pixels, max_pixels=max_pixels)
    tok = processor.tokenizer
    spec = FAMILIES[family]
    eos = [tok.convert_tokens_to_ids(t) for t in spec.eos_tokens]
    eos = [i for i in eos if i is not None and i != tok.unk_token_id]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.convert_tokens_to_ids(spec.pad_token)
    cfg = net.config
    media_ids = (getattr(cfg, "image_token_id", None), getattr(cfg, "video_token_id", None))
    suppressed = [i for i in media_ids if i is not None]
    return LoadedModel(net, processor, family, path, eos, pad, suppressed)
