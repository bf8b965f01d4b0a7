"""Tiny models, loading, processor, LoRA targets, chunked log-probs — on all three families."""

from __future__ import annotations

import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.training.conftest import FAMILIES
from tests.training.helpers import colour_examples
from workers.training.logprobs import completion_logprobs
from workers.training.lora import attach_lora, target_regex
from workers.training.model import FAMILIES as FAMILY_MAP
from workers.training.model import coords_for, family_of, load_model
from workers.training.processor import load_processor
from workers.training.rollout import generate_rollouts, image_features, prepare_prompts
from workers.training.tiny import make_tiny_model, resolve_model


def test_tiny_model_build_is_deterministic_and_cached(tmp_path, model_cache):
    a = load_file(make_tiny_model("qwen2-vl", tmp_path / "a") / "model.safetensors")
    b = load_file(make_tiny_model("qwen2-vl", tmp_path / "b") / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    folder = resolve_model("vrft/tiny-qwen2-vl", model_cache)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("vrft/tiny-qwen2-vl", model_cache) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert not [p for p in model_cache.iterdir() if p.name.startswith(".")]  # no temp dirs left behind
    assert resolve_model(str(folder)) == folder  # a folder is taken as is


def test_family_and_coordinate_conventions(model_cache):
    expected = {"qwen2-vl": "norm1000", "qwen2.5-vl": "pixels_resized", "qwen3-vl": "norm1000"}
    for family, coords in expected.items():
        folder = resolve_model(f"vrft/tiny-{family}", model_cache)
        assert family_of(folder) == family
        assert family_of(f"vrft/tiny-{family}") == family
        assert coords_for(family) == coords
    assert family_of({"model_type": "qwen2_5_vl"}) == "qwen2.5-vl"
    assert set(FAMILY_MAP) == set(expected)
    with pytest.raises(ValueError):
        family_of({"model_type": "llava"})


@pytest.mark.parametrize("family", FAMILIES)
def test_processor_has_no_video_side_and_respects_pixel_limits(model_cache, family):
    folder = resolve_model(f"vrft/tiny-{family}", model_cache)
    processor = load_processor(folder, min_pixels=3136, max_pixels=64 * 64)
    assert "torchvision" not in sys.modules
    assert not hasattr(processor, "video_processor")
    assert processor.tokenizer.padding_side == "left"
    from PIL import Image

    batch = prepare_prompts(processor, [{"prompt": "hi", "image": Image.new("RGB", (640, 480))}], torch.device("cpu"))
    w, h = batch.resized_sizes[0]
    assert w * h <= 64 * 64 and batch.image_sizes[0] == [640, 480]
    assert batch.texts[0].startswith("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>hi<|im_end|>")


def test_lora_never_touches_the_vision_tower(model_cache):
    # Qwen2.5-VL's vision blocks have gate/up/down_proj too: a name list alone would catch them
    loaded = load_model("vrft/tiny-qwen2.5-vl", cache_dir=model_cache)
    assert any(n.startswith("model.visual.") and n.endswith("mlp.gate_proj") for n, _ in loaded.model.named_modules())
    model = attach_lora(loaded.model, r=4, alpha=8, seed=0)
    lora = [n for n, p in model.named_parameters() if p.requires_grad]
    assert lora and all("lora_" in n and "language_model" in n for n in lora)
    assert {n.split(".")[-4] for n in lora} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                "down_proj"}
    # user-given short names get the same protection
    import re

    assert re.fullmatch(target_regex(["gate_proj"]), "model.language_model.layers.0.mlp.gate_proj")
    assert not re.fullmatch(target_regex(["gate_proj"]), "model.visual.blocks.0.mlp.gate_proj")


@pytest.mark.parametrize("family", FAMILIES)
def test_chunked_logprobs_equal_full_logits_and_no_placeholder_is_sampled(model_cache, family):
    torch.manual_seed(0)
    loaded = load_model(f"vrft/tiny-{family}", cache_dir=model_cache)
    model = attach_lora(loaded.model, r=4, alpha=8, dropout=0.0, seed=0)
    with torch.no_grad():  # make the adapter non-trivial
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.eval()
    batch = prepare_prompts(loaded.processor, colour_examples(), torch.device("cpu"))
    features = image_features(model, batch)
    sampling = dict(tokenizer=loaded.processor.tokenizer, group_size=4, max_new_tokens=12,
                    eos_token_ids=loaded.eos_token_ids, pad_token_id=loaded.pad_token_id,
                    suppressed_token_ids=loaded.suppressed_token_ids)
    torch.manual_seed(1)
    rollouts = generate_rollouts(model, batch, features, **sampling)
    torch.manual_seed(1)
    again = generate_rollouts(model, batch, image_features(model, batch, encode_once=False), **sampling)
    assert torch.equal(again.completion_ids, rollouts.completion_ids)
    assert not torch.isin(rollouts.completion_ids, torch.tensor(loaded.suppressed_token_ids)).any()
    ours = completion_logprobs(model, rollouts, features, chunk_tokens=5,
                               suppressed_token_ids=loaded.suppressed_token_ids)
    assert features.features is not None  # this transformers takes pre-encoded images
    # the fallback for an older transformers (pixels repeated per completion) gives the same numbers
    fallback = completion_logprobs(model, rollouts, image_features(model, batch, encode_once=False),
                                   suppressed_token_ids=loaded.suppressed_token_ids)
    assert torch.allclose(fallback, ours, atol=1e-5)

    # reference: the plain forward with pixel values repeated per completion, full logits
    ids = torch.cat([rollouts.prompt_ids, rollouts.completion_ids], 1)
    mask = torch.cat([rollouts.prompt_mask, rollouts.completion_mask.long()], 1)
    types = torch.cat([rollouts.mm_token_type_ids, torch.zeros_like(rollouts.completion_ids)], 1)
    per_image = batch.pixel_values.view(len(batch.examples), -1, batch.pixel_values.shape[-1])
    pixels = per_image[rollouts.image_index].reshape(-1, batch.pixel_values.shape[-1])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, mm_token_type_ids=types, pixel_values=pixels,
                       image_grid_thw=rollouts.image_grid_thw).logits.float()
    P = rollouts.prompt_ids.shape[1]
    logits = logits[:, P - 1:-1]
    logits[..., loaded.suppressed_token_ids] = float("-inf")
    reference = logits.log_softmax(-1).gather(2, rollouts.completion_ids.unsqueeze(-1)).squeeze(-1)
    reference = reference * rollouts.completion_mask
    assert torch.allclose(ours, reference, atol=1e-4)
