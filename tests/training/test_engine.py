"""The rollout engine (engine.py): greedy decoding token-for-token HF `generate`'s on all three families,
seeded sampling reproducible, EOS/compaction and top-p semantics."""

from __future__ import annotations

import pytest
import torch

from tests.training.conftest import FAMILIES
from tests.training.helpers import colour_examples, tiny_policy_batch
from workers.training import engine
from workers.training.rollout import generate_rollouts


def _setup(model_cache, family):
    return tiny_policy_batch(model_cache, family)


def _options(loaded, **changes):
    return dict(tokenizer=loaded.processor.tokenizer, group_size=2, max_new_tokens=24,
                eos_token_ids=loaded.eos_token_ids, pad_token_id=loaded.pad_token_id,
                suppressed_token_ids=loaded.suppressed_token_ids) | changes


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_decoding_is_token_for_token_generate(model_cache, family):
    loaded, model, batch, images = _setup(model_cache, family)
    ours = engine.sample(model, batch, images, do_sample=False, **_options(loaded))
    hf = generate_rollouts(model, batch, images, do_sample=False, **_options(loaded))
    assert torch.equal(ours.completion_ids, hf.completion_ids), family
    assert torch.equal(ours.completion_mask, hf.completion_mask)
    assert ours.texts == hf.texts
    assert torch.equal(ours.prompt_ids, hf.prompt_ids) and torch.equal(ours.image_index, hf.image_index)


def test_rows_that_end_early_stop_and_are_padded(model_cache):
    """Make one token an EOS so rows finish at different steps: compaction must keep every other row's tokens."""
    loaded, model, batch, images = _setup(model_cache, "qwen2-vl")
    hf_free = generate_rollouts(model, batch, images, do_sample=False, **_options(loaded))
    # pick a token some rows emit mid-way: treating it as an EOS ends those rows there
    stopper = int(hf_free.completion_ids[0, 5])
    eos = loaded.eos_token_ids + [stopper]
    hf = generate_rollouts(model, batch, images, do_sample=False, **_options(loaded, eos_token_ids=eos))
    for bucketed in (False, True):  # exact compaction (eager) and power-of-two buckets padded with done rows (graphs)
        ours = engine.sample(model, batch, images, do_sample=False, bucketed=bucketed,
                             **_options(loaded, eos_token_ids=eos))
        assert torch.equal(ours.completion_ids, hf.completion_ids), bucketed
    lengths = ours.completion_mask.sum(1)
    assert lengths.min() < lengths.max()  # rows really ended at different steps
    assert (ours.completion_ids[ours.completion_mask == 0] == loaded.pad_token_id).all()


@pytest.mark.parametrize("sampled", [False, True])
def test_token_hook_sees_every_kept_token_in_order_and_changes_nothing(model_cache, sampled):
    """`on_tokens` (what chat streaming reads): each row's tokens, step by step, up to its EOS, through
    compaction; a run with the hook is the run without it (seeded sampling: the same draws)."""
    loaded, model, batch, images = _setup(model_cache, "qwen2-vl")
    free = generate_rollouts(model, batch, images, do_sample=False, **_options(loaded))
    eos = loaded.eos_token_ids + [int(free.completion_ids[0, 5])]  # greedy rows end at different steps
    opts = _options(loaded, eos_token_ids=eos, group_size=3, do_sample=sampled, bucketed=True)
    torch.manual_seed(3)
    plain = engine.sample(model, batch, images, **opts)
    seen: dict[int, list[int]] = {}

    def hook(rows, tokens):
        for r, t in zip(rows.tolist(), tokens.tolist(), strict=True):
            seen.setdefault(r, []).append(t)

    torch.manual_seed(3)
    hooked = engine.sample(model, batch, images, on_tokens=hook, **opts)
    assert torch.equal(hooked.completion_ids, plain.completion_ids) and hooked.texts == plain.texts
    kept = [[t for t, k in zip(ids, keep, strict=True) if k] for ids, keep in
            zip(plain.completion_ids.tolist(), plain.completion_mask.tolist(), strict=True)]
    assert [seen[r] for r in range(len(kept))] == kept
    if not sampled:
        assert len({len(k) for k in kept}) > 1  # rows really ended at different steps (and were compacted)


def test_seeded_sampling_is_reproducible_and_respects_suppression(model_cache):
    loaded, model, batch, images = _setup(model_cache, "qwen3-vl")
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        runs.append(engine.sample(model, batch, images, temperature=1.3, top_p=0.9, **_options(loaded, group_size=4)))
    assert torch.equal(runs[0].completion_ids, runs[1].completion_ids)
    assert not torch.isin(runs[0].completion_ids, torch.tensor(loaded.suppressed_token_ids)).any()
    # the G completions of a prompt are independent draws, not copies
    assert not torch.equal(runs[0].completion_ids[0], runs[0].completion_ids[1])
    torch.manual_seed(8)
    other = engine.sample(model, batch, images, temperature=1.3, top_p=0.9, **_options(loaded, group_size=4))
    assert not torch.equal(other.completion_ids, runs[0].completion_ids)


def test_process_logits_matches_generate_processors():
    """Suppression → temperature → top-p, as transformers' logits processors do it."""
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        SuppressTokensLogitsProcessor,
        TemperatureLogitsWarper,
        TopPLogitsWarper,
    )

    torch.manual_seed(0)
    logits = torch.randn(5, 50)
    hf = LogitsProcessorList([SuppressTokensLogitsProcessor([3, 4]), TemperatureLogitsWarper(0.7),
                              TopPLogitsWarper(0.8)])(torch.zeros(5, 1, dtype=torch.long), logits.clone())
    torch.manual_seed(1)
    want = torch.multinomial(hf.softmax(-1), 1).squeeze(1)
    torch.manual_seed(1)
    got = engine.process_logits(logits.clone(), suppressed=[3, 4], temperature=0.7, top_p=0.8, do_sample=True)
    assert torch.equal(got, want)
    assert torch.equal(engine.process_logits(logits.clone(), suppressed=[int(logits[0].argmax())], temperature=1.0,
                                             top_p=1.0, do_sample=False)[0], logits[0].topk(2).indices[1])


def test_evaluation_decodes_with_the_engine_and_matches_generate(model_cache):
    from tests.training.helpers import byte_value_reward
    from workers.training.evaluate import evaluate

    loaded, model, _, _ = _setup(model_cache, "qwen2.5-vl")
    data = colour_examples() * 3  # 9 prompts, batches of 4: a short last batch too
    ours = evaluate(model, loaded, data, byte_value_reward, max_new_tokens=16, batch_size=4)
    hf = evaluate(model, loaded, data, byte_value_reward, max_new_tokens=16, batch_size=4, rollout_engine="generate")
    assert [s["output_text"] for s in ours["samples"]] == [s["output_text"] for s in hf["samples"]]
    assert ours["reward_mean"] == hf["reward_mean"] and ours["n"] == 9
