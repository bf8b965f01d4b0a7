"""Our own processor loader for the Qwen VL families.

Why not `AutoProcessor.from_pretrained`: the stock `Qwen2VLProcessor` (and the 2.5/3 variants) builds
a video processor, which imports torchvision; torchvision does not import beside our torch, so the
stock processor fails (`VIDEO_PROCESSOR_MAPPING … _extra_content`). We only train on images, so
`VrftProcessor` is a `Qwen2VLProcessor` whose `__init__` takes no `video_processor`, with the
pure-PIL image processor `Qwen2VLImageProcessorPil`. It works for all three families: their image
paths differ only in numbers (patch 14 vs 16, normalisation mean/std) that the folder's
`preprocessor_config.json` carries.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoTokenizer
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor

DEFAULT_MIN_PIXELS = 3_136  # 56 × 56: the paper's floor
DEFAULT_MAX_PIXELS = 401_408  # 512 merged visual tokens at patch 14, merge 2

# Keys of preprocessor_config.json that we forward to the PIL image processor; everything else
# (class names, the fast/torchvision-only options) is ignored on purpose.
_IMAGE_KEYS = ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std",
               "do_rescale", "rescale_factor", "do_normalize", "do_convert_rgb")


class VrftProcessor(Qwen2VLProcessor):
    """Image + text processor for Qwen2-VL / Qwen2.5-VL / Qwen3-VL, without a video processor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        # Deliberately no `video_processor` argument: ProcessorMixin derives its sub-processors from
        # this signature, so none is created (and torchvision is never imported).
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _chat_template(folder: Path, tokenizer) -> str | None:
    """The chat template, wherever this checkpoint keeps it (jinja file, json, or tokenizer config)."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    as_json = _read_json(folder / "chat_template.json")
    if as_json.get("chat_template"):
        return as_json["chat_template"]
    return getattr(tokenizer, "chat_template", None)


def load_processor(path: str | Path, *, min_pixels: int = DEFAULT_MIN_PIXELS,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> VrftProcessor:
    """Load tokenizer + image processor + chat template from a local model folder.

    `min_pixels`/`max_pixels` bound the resized image area (the processor keeps the aspect ratio and
    rounds sides to multiples of patch × merge). The tokenizer pads on the left, as batched
    generation needs.
    """
    folder = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = "<|endoftext|>"
    cfg = _read_json(folder / "preprocessor_config.json")
    image_kwargs = {k: cfg[k] for k in _IMAGE_KEYS if k in cfg}
    image_processor = Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels, **image_kwargs)
    return VrftProcessor(image_processor=image_processor, tokenizer=tokenizer,
                         chat_template=_chat_template(folder, tokenizer))
