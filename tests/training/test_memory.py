"""The pre-flight memory estimate (memory.py) on the architectures users will run."""

from __future__ import annotations

from transformers import Qwen2VLConfig

from workers.training.memory import GIB, advice, estimate

# Qwen2-VL-7B-Instruct's and -2B-Instruct's text shapes (their config.json); vision is irrelevant here.
Q7B = Qwen2VLConfig(text_config=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                                     num_attention_heads=28, num_key_value_heads=4, vocab_size=152064))
Q2B = Qwen2VLConfig(text_config=dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                     num_attention_heads=12, num_key_value_heads=2, vocab_size=151936))
H100 = 80 * 10**9


def _step(config, params, **changes):
    shapes = dict(parameters=params, lora_parameters=20_000_000, dtype_bytes=2, prompts_per_step=16, group_size=8,
                  grad_accum=1, prompt_tokens=587, completion_tokens=256, gradient_checkpointing=True,
                  logit_chunk_tokens=1024, device_bytes=H100)
    return estimate(config, **(shapes | changes))


def test_7b_at_16x8x1024_does_not_fit_80gb_and_says_what_to_turn():
    result = _step(Q7B, 8_300_000_000, completion_tokens=1024)
    assert result.fits is False and result.total_gib > 0.9 * H100 / GIB
    assert "gradient_accumulation_steps" in advice(result)
    # accumulation over 4 micro-batches brings it under
    assert _step(Q7B, 8_300_000_000, completion_tokens=1024, grad_accum=4).fits is True


def test_2b_paper_workload_fits_with_checkpointing_not_without():
    assert _step(Q2B, 2_200_000_000).fits is True
    without = _step(Q2B, 2_200_000_000, gradient_checkpointing=False)
    assert without.fits is False and without.activations_gib > 10 * _step(Q2B, 2_200_000_000).activations_gib


def test_terms_scale_as_their_shapes_and_unknown_device_gives_no_verdict():
    base = _step(Q2B, 2_200_000_000)
    double = _step(Q2B, 2_200_000_000, prompts_per_step=32)
    assert abs(double.kv_cache_gib - 2 * base.kv_cache_gib) < 1e-9
    assert abs(double.activations_gib - 2 * base.activations_gib) < 1e-9
    assert abs(base.weights_gib - 2_200_000_000 * 2 / GIB) < 1e-9
    unknown = _step(Q2B, 2_200_000_000, device_bytes=None)
    assert unknown.fits is None and advice(unknown) is None
    assert set(base.to_dict()) >= {"total_gib", "kv_cache_gib", "activations_gib", "fits"}
