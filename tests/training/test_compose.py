"""compose_adapters: the adapter a job on an ft: model publishes is exactly "earlier adapter merged, then
this job's adapter on top", as one LoRA that loads on the plain base model — different ranks, alphas
and target modules included."""

from __future__ import annotations

import json

import torch
from peft import PeftModel

from workers.training.lora import attach_lora, compose_adapters, merge_adapter
from workers.training.model import load_model


def _randomise(peft_model, seed: int) -> None:
    # a fresh adapter has B = 0 (no effect): give every LoRA matrix weight so the test can fail
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def test_composed_adapter_equals_merge_then_train_on_top(model_cache, tmp_path):
    torch.manual_seed(0)
    ids = torch.tensor([[5, 17, 29, 41, 53, 65, 77, 89]])
    first = attach_lora(load_model("vrft/tiny-qwen2-vl", cache_dir=model_cache).model, r=4, alpha=8, dropout=0.0)
    _randomise(first, 1)
    first.save_pretrained(tmp_path / "first")

    merged = merge_adapter(load_model("vrft/tiny-qwen2-vl", cache_dir=model_cache).model, tmp_path / "first")
    second = attach_lora(merged, r=8, alpha=32, dropout=0.0, target_modules=("q_proj", "v_proj", "down_proj"))
    _randomise(second, 2)
    second.eval()
    expected = _logits(second, ids)
    second.save_pretrained(tmp_path / "second")

    out = compose_adapters(tmp_path / "first", tmp_path / "second", tmp_path / "composed")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 12 and config["lora_alpha"] == 12
    base = load_model("vrft/tiny-qwen2-vl", cache_dir=model_cache).model
    plain = _logits(base, ids)
    standalone = PeftModel.from_pretrained(base, str(out)).eval()
    got = _logits(standalone, ids)
    assert not torch.allclose(plain, expected, atol=1e-3), "the adapters must change the model"
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
