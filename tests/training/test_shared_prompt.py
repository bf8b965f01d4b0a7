"""Prompt once per group (packing.py) gives the full recompute's numbers: log-probs and LoRA gradients,
on all three families, with and without gradient checkpointing, whole batch or accumulated micro-batches."""

from __future__ import annotations

import pytest
import torch

from tests.training.conftest import FAMILIES
from tests.training.helpers import tiny_policy_batch
from workers.training.logprobs import completion_logprobs
from workers.training.packing import group_mask, group_rows
from workers.training.rollout import generate_rollouts, subset

G = 3


def _setup(model_cache, family, *, gradient_checkpointing=False):
    loaded, model, batch, images = tiny_policy_batch(model_cache, family,
                                                     gradient_checkpointing=gradient_checkpointing)
    torch.manual_seed(1)
    rollouts = generate_rollouts(model, batch, images, tokenizer=loaded.processor.tokenizer, group_size=G,
                                 max_new_tokens=10, eos_token_ids=loaded.eos_token_ids,
                                 pad_token_id=loaded.pad_token_id, suppressed_token_ids=loaded.suppressed_token_ids)
    # uneven completion lengths: cut some rows short with an EOS, as real sampling does
    rollouts.completion_ids[1, 3] = loaded.eos_token_ids[0]
    rollouts.completion_ids[5, 0] = loaded.eos_token_ids[0]
    from workers.training.algo import completion_mask

    rollouts.completion_mask = completion_mask(rollouts.completion_ids, loaded.eos_token_ids)
    return loaded, model, images, rollouts


def _logprobs_and_grads(model, loaded, images, micros, share_prompt):
    model.train()
    model.zero_grad(set_to_none=True)
    outs = []
    for m in micros:
        logp = completion_logprobs(model, m, images, chunk_tokens=7, suppressed_token_ids=loaded.suppressed_token_ids,
                                   share_prompt=share_prompt)
        (logp * m.completion_mask).sum().mul(0.1).backward()  # any smooth function of every log-prob
        outs.append(logp.detach())
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    model.eval()
    return outs, grads


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("gradient_checkpointing", [False, True], ids=["plain", "checkpointing"])
def test_shared_prompt_equals_full_recompute(model_cache, family, gradient_checkpointing):
    loaded, model, images, rollouts = _setup(model_cache, family, gradient_checkpointing=gradient_checkpointing)
    for micro_groups in ([0, 1, 2], [0], [1, 2]):  # whole batch, then accumulation-style micro-batches
        rows = torch.tensor([g * G + j for g in micro_groups for j in range(G)])
        micro = subset(rollouts, rows)
        assert group_rows(micro.image_index) is not None  # the shared path is really taken
        shared, shared_grads = _logprobs_and_grads(model, loaded, images, [micro], True)
        full, full_grads = _logprobs_and_grads(model, loaded, images, [micro], False)
        assert torch.allclose(shared[0], full[0], atol=1e-5), (family, micro_groups)
        assert (shared[0][micro.completion_mask == 0] == 0).all()
        assert shared_grads.keys() == full_grads.keys() and shared_grads
        for name in full_grads:
            assert torch.allclose(shared_grads[name], full_grads[name], atol=1e-5, rtol=1e-4), (family, name)
        assert any(g.abs().sum() > 0 for g in shared_grads.values())

    # accumulation: two micro-batches accumulate the same gradients as the whole batch in one pass
    whole = subset(rollouts, torch.arange(3 * G))
    parts = [subset(rollouts, torch.arange(0, G)), subset(rollouts, torch.arange(G, 3 * G))]
    _, whole_grads = _logprobs_and_grads(model, loaded, images, [whole], True)
    _, part_grads = _logprobs_and_grads(model, loaded, images, parts, True)
    for name in whole_grads:
        assert torch.allclose(whole_grads[name], part_grads[name], atol=1e-5, rtol=1e-4), name


def test_rows_that_are_not_whole_groups_take_the_full_recompute(model_cache):
    loaded, model, images, rollouts = _setup(model_cache, "qwen2-vl")
    odd = subset(rollouts, torch.tensor([0, 1, 3, 4, 5]))  # groups of 2 and 3
    assert group_rows(odd.image_index) is None
    with torch.no_grad():
        got = completion_logprobs(model, odd, images, suppressed_token_ids=loaded.suppressed_token_ids)
        want = completion_logprobs(model, odd, images, suppressed_token_ids=loaded.suppressed_token_ids,
                                   share_prompt=False)
    assert torch.equal(got, want)


def test_group_mask_layout():
    prompt_mask = torch.tensor([[0, 1, 1]])  # one left pad
    mask = group_mask(prompt_mask, group_size=2, block=2)[0, 0]  # (7, 7): P=3 then blocks [3,4] and [5,6]
    expected = torch.tensor([
        [1, 0, 0, 0, 0, 0, 0],  # the pad row sees only itself
        [0, 1, 0, 0, 0, 0, 0],
        [0, 1, 1, 0, 0, 0, 0],
        [0, 1, 1, 1, 0, 0, 0],  # block 1: the prompt (not its pad), then causal
        [0, 1, 1, 1, 1, 0, 0],
        [0, 1, 1, 0, 0, 1, 0],  # block 2 never sees block 1
        [0, 1, 1, 0, 0, 1, 1],
    ], dtype=torch.bool)
    assert torch.equal(mask, expected)
    additive = group_mask(prompt_mask, 2, 2, torch.float32)[0, 0]
    assert torch.equal(additive == 0, expected)
