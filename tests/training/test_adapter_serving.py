"""The adapter a job hands out is one that other servers load *with effect*.

A PEFT adapter is a bag of tensors keyed by module path. If those paths or the `target_modules` in
`adapter_config.json` do not name modules of the model it is loaded into, peft and vLLM both load it
without complaint and the "tuned" model answers exactly as the base model. These tests load what our
trainer saves (`attach_lora` + `save_adapter`, the same calls `train()` makes) into a fresh
`AutoModelForImageTextToText` — the *ForConditionalGeneration class a user or vLLM serves — and
check that every tensor lands on a language-model projection, none on the vision tower, and the
outputs move; then that each name maps, by vLLM's rules for the Qwen-VL models (README "Serving
the adapter elsewhere"), onto a module vLLM puts LoRA on.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from tests.training.conftest import FAMILIES
from tests.training.helpers import colour_examples
from workers.training.checkpoint import save_adapter
from workers.training.lora import DEFAULT_TARGETS, attach_lora
from workers.training.model import load_model
from workers.training.rollout import prepare_prompts

# vLLM's Qwen2-VL / Qwen2.5-VL / Qwen3-VL `hf_to_vllm_mapper` prefixes, tried in this order (the
# first that matches wins); after them the module must sit under vLLM's language model, not under
# `visual.` (get_mm_mapping's tower/connector, which vLLM leaves without LoRA by default).
VLLM_PREFIXES = (("model.language_model.", "language_model.model."), ("model.visual.", "visual."),
                 ("lm_head.", "language_model.lm_head."), ("model.", "language_model.model."))
# What vLLM's Qwen2 language model accepts as a LoRA module's last name: its own layers plus the
# parts of its packed layers (qkv_proj ← q/k/v_proj, gate_up_proj ← gate/up_proj).
VLLM_LORA_MODULES = {"qkv_proj", "q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "gate_proj", "up_proj",
                     "down_proj"}
LORA_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")


def vllm_module(key: str) -> str:
    """The vLLM module a saved adapter tensor is applied to, or a ValueError saying why none."""
    m = LORA_KEY.match(key)
    if not m:
        raise ValueError(f"{key}: not a peft LoRA tensor name (base_model.model.<module>.lora_A|B.weight)")
    name = m["module"]
    for old, new in VLLM_PREFIXES:
        if name.startswith(old):
            name = new + name[len(old):]
            break
    if not name.startswith("language_model.model.layers."):
        raise ValueError(f"{key}: maps to {name}, outside vLLM's language-model layers")
    if name.rsplit(".", 1)[-1] not in VLLM_LORA_MODULES:
        raise ValueError(f"{key}: {name.rsplit('.', 1)[-1]} is not a LoRA module of vLLM's Qwen2 model")
    return name


def test_vllm_name_check_refuses_what_vllm_would_not_apply():
    """The check above can fail: vision-tower and unknown-module names are refused."""
    assert vllm_module("base_model.model.model.language_model.layers.3.mlp.gate_proj.lora_A.weight") == \
        "language_model.model.layers.3.mlp.gate_proj"
    for bad in ("base_model.model.model.visual.blocks.0.attn.qkv.lora_A.weight",
                "base_model.model.model.language_model.layers.0.input_layernorm.lora_B.weight",
                "base_model.model.lm_head.lora_A.weight",
                "model.language_model.layers.0.self_attn.q_proj.weight"):
        with pytest.raises(ValueError):
            vllm_module(bad)


def _saved_adapter(family: str, model_cache, folder):
    loaded = load_model(f"vrft/tiny-{family}", cache_dir=model_cache)
    model = attach_lora(loaded.model, r=4, alpha=8, dropout=0.0, seed=0)
    with torch.no_grad():  # a trained adapter's B is non-zero; a fresh one's is exactly zero
        gen = torch.Generator().manual_seed(1)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return loaded, save_adapter(folder, model=model, model_dir=loaded.path, metrics={}, config={})


@pytest.mark.parametrize("family", FAMILIES)
def test_saved_adapter_loads_with_effect_into_the_conditional_generation_class(family, model_cache, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    loaded, adapter_dir = _saved_adapter(family, model_cache, tmp_path / "adapter")
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    saved = load_file(adapter_dir / "adapter_model.safetensors")
    assert saved and config["r"] == 4

    base = AutoModelForImageTextToText.from_pretrained(str(loaded.path), dtype=torch.float32).eval()
    assert type(base).__name__.endswith("ForConditionalGeneration")
    batch = prepare_prompts(loaded.processor, colour_examples(), torch.device("cpu"))
    inputs = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask, pixel_values=batch.pixel_values,
                  image_grid_thw=batch.image_grid_thw, mm_token_type_ids=batch.mm_token_type_ids)
    with torch.no_grad():
        base_logits = base(**inputs).logits.clone()
    hf_modules = [n for n, _ in base.named_modules()]

    # target_modules (our vision-excluding regex) names language-model projections and nothing visual
    targets = config["target_modules"]
    pattern = targets if isinstance(targets, str) else None
    matched = [n for n in hf_modules if (re.fullmatch(pattern, n) if pattern else n.rsplit(".", 1)[-1] in targets)]
    assert matched, f"target_modules {targets!r} match no module of {type(base).__name__}"
    assert not [n for n in matched if "visual" in n or "vision" in n]
    assert {n.rsplit(".", 1)[-1] for n in matched} == set(DEFAULT_TARGETS)

    tuned = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    # every saved tensor was matched: it is a parameter of the loaded model, with the saved values,
    # and no LoRA parameter of the loaded model is left without a saved tensor
    params = dict(tuned.named_parameters())
    lora_params = {n for n in params if ".lora_" in n}
    expected = {re.sub(r"\.lora_([AB])\.weight$", r".lora_\1.default.weight", k) for k in saved}
    assert expected == lora_params, (f"unexpected: {sorted(expected - lora_params)[:3]}, "
                                     f"missing: {sorted(lora_params - expected)[:3]}")
    for key, tensor in saved.items():
        name = re.sub(r"\.lora_([AB])\.weight$", r".lora_\1.default.weight", key)
        assert torch.equal(params[name].detach(), tensor), f"{key} was not loaded as saved"
        module = LORA_KEY.match(key)["module"]
        assert ".language_model.layers." in module and "visual" not in module, f"{key} is not in a language-model layer"
        assert module in hf_modules

    with torch.no_grad():
        tuned_logits = tuned(**inputs).logits
        with tuned.disable_adapter():
            off_logits = tuned(**inputs).logits
    assert (tuned_logits - base_logits).abs().max() > 1e-3, "the adapter loaded but changes nothing"
    torch.testing.assert_close(off_logits, base_logits)

    # and vLLM (tensor names are its source of truth for a .safetensors adapter) applies each one
    modules = {vllm_module(k) for k in saved}
    assert {m.rsplit(".", 1)[-1] for m in modules} == set(DEFAULT_TARGETS)
