"""Supervised fine-tuning (sft.py) on the tiny model: it memorises per-image answers, its loss falls, resume
is exact, only assistant tokens are learnt — and an RFT job started from the SFT adapter begins where SFT ended."""

from __future__ import annotations

import pytest
import torch

from tests.training.helpers import colour_examples, png
from workers.training.config import TrainConfig
from workers.training.grpo import train
from workers.training.hooks import RecordingHooks
from workers.training.lora import lora_parameters
from workers.training.model import load_model
from workers.training.sft import check_sft_examples, encode, train_sft

ANSWERS = {"red": "R1", "green": "G22", "blue": "B333"}  # distinct lengths: a constant answer cannot pass


def answer_rows() -> list[dict]:
    return [dict(ex, item={"solution": ANSWERS[ex["id"]]}) for ex in colour_examples()]


def exact(samples, items):
    rewards = [1.0 if s["output_text"].strip() == item["solution"] else 0.0
               for s, item in zip(samples, items, strict=True)]
    return rewards, {"exact": rewards}, {}


def config(cache, out, **changes) -> TrainConfig:
    base = dict(model="vrft/tiny-qwen2-vl", model_cache_dir=str(cache), output_dir=str(out), prompts_per_step=3,
                max_steps=40, learning_rate=1e-2, lora_r=8, lora_alpha=16, lora_dropout=0.0, max_completion_tokens=8,
                seed=0, eval_before_training=True)
    return TrainConfig(**(base | changes))


def test_sft_memorises_per_image_answers_and_its_loss_falls(model_cache, tmp_path):
    hooks = RecordingHooks()
    result = train_sft(config(model_cache, tmp_path), answer_rows(), answer_rows(), grader=exact, hooks=hooks)
    losses = [m["train_loss"] for m in result.metrics]
    assert losses[-1] < 0.2 * losses[0]
    assert result.metrics[-1]["train_mean_token_accuracy"] > 0.9
    before, after = hooks.evals[0][1], hooks.evals[-1][1]
    assert before["reward_mean"] == 0.0 and after["reward_mean"] >= 0.9  # exact match on every training image
    assert after["valid_loss"] < before["valid_loss"] and after["valid_mean_token_accuracy"] > 0.9
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()


def test_sft_resume_is_exact(model_cache, tmp_path):
    straight = train_sft(config(model_cache, tmp_path / "a", max_steps=4, checkpoint_interval=2), answer_rows())
    first = train_sft(config(model_cache, tmp_path / "b", max_steps=4, checkpoint_interval=2), answer_rows(),
                      hooks=RecordingHooks(stop_after=2))
    assert first.stopped == "pause" and first.checkpoint_dir is not None
    resumed = train_sft(config(model_cache, tmp_path / "b", max_steps=4, checkpoint_interval=2,
                               resume_from=str(first.checkpoint_dir)), answer_rows())
    a, b = lora_parameters(straight.model), lora_parameters(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [m["train_loss"] for m in straight.metrics[2:]] == [m["train_loss"] for m in resumed.metrics]


def test_only_assistant_tokens_are_targets_and_weight_zero_turns_are_skipped(model_cache):
    loaded = load_model("vrft/tiny-qwen2-vl", cache_dir=model_cache)
    chat = {"id": "c", "images": [png((255, 0, 0))], "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Colour?"}, {"type": "image"}]},
        {"role": "assistant", "content": "red", "weight": 0},
        {"role": "user", "content": "Again, shorter?"},
        {"role": "assistant", "content": "rd"}]}
    batch = encode(loaded.processor, [chat, answer_rows()[1]], torch.device("cpu"))
    tok = loaded.processor.tokenizer
    chat_targets = tok.decode(batch.input_ids[0][batch.targets[0]].tolist())
    assert chat_targets == "rd<|im_end|>"  # the weight-0 turn, user turns and the system prompt are not learnt
    row_targets = tok.decode(batch.input_ids[1][batch.targets[1]].tolist())
    assert row_targets == "G22<|im_end|>"  # a Visual-RFT row's solution is its target
    assert batch.model_inputs["image_grid_thw"].shape[0] == 2


@pytest.mark.parametrize("bad, message", [
    ({"id": "x", "messages": [{"role": "user", "content": "hi"}]}, "no assistant turn"),
    ({"id": "y", "messages": [{"role": "user", "content": [{"type": "image"}]}, {"role": "assistant", "content": "a"}],
      "images": []}, "1 image parts but 0 images"),
    ({"id": "z", "prompt": "p", "image": b"", "item": {"solution": "  "}}, "non-empty item.solution"),
])
def test_bad_sft_examples_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        check_sft_examples([bad])


def test_rft_from_an_sft_adapter_starts_at_the_sft_models_behaviour(model_cache, tmp_path):
    sft_hooks = RecordingHooks()
    sft = train_sft(config(model_cache, tmp_path / "sft", max_steps=30), answer_rows(), answer_rows(), grader=exact,
                    hooks=sft_hooks)
    rft_hooks = RecordingHooks()
    rft = train(config(model_cache, tmp_path / "rft", max_steps=1, group_size=2, learning_rate=1e-5,
                       init_adapter=str(sft.adapter_dir)),
                answer_rows(), answer_rows(), grader=exact, hooks=rft_hooks)
    sft_final, rft_start = sft_hooks.evals[-1][1], rft_hooks.evals[0][1]
    assert rft_hooks.evals[0][0] == 0
    assert [s["output_text"] for s in rft_start["samples"]] == [s["output_text"] for s in sft_final["samples"]]
    assert rft_start["reward_mean"] == sft_final["reward_mean"] > 0.5
    assert rft.adapter_dir is not None


def test_evaluation_prompts_keep_the_chats_own_turns(model_cache):
    """A chat is evaluated on the conversation it was trained on (system prompt, earlier turns, part order),
    cut before its last answer — not flattened into one [image, text] turn."""
    from workers.training.rollout import chat_prompt
    from workers.training.sft import generation_prompt

    loaded = load_model("vrft/tiny-qwen2-vl", cache_dir=model_cache)
    chat = {"id": "c", "images": [png((255, 0, 0))], "item": {"solution": "rd"}, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Colour?"}, {"type": "image"}]},
        {"role": "assistant", "content": "red", "weight": 0},
        {"role": "user", "content": "Again, shorter?"},
        {"role": "assistant", "content": "rd"}]}
    prompt = generation_prompt(chat)
    assert prompt is not None and prompt["messages"] == chat["messages"][:4] and prompt["item"] == {"solution": "rd"}
    text = chat_prompt(loaded.processor, prompt)
    assert text.index("Be brief.") < text.index("Colour?") < text.index("<|vision_start|>") < text.index("shorter")
    assert text.endswith("<|im_start|>assistant\n") and "rd<|im_end|>" not in text
    assert generation_prompt({**chat, "images": []}) is None  # no image to ask about
