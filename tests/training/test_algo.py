"""The GRPO maths on hand-computed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from workers.training import algo


def test_eos_mask_keeps_the_first_eos_and_drops_everything_after():
    eos, pad = 9, 8
    ids = torch.tensor([[1, 2, 9, 5, 9],  # EOS at 2: keep 0..2
                        [9, 1, 1, 1, 1],  # EOS first: keep only it
                        [1, 2, 3, 4, 5],  # no EOS (cut at max tokens): keep all
                        [1, 8, 3, 8, 8]])  # a second EOS id (pad) counts too
    mask = algo.completion_mask(ids, [eos, pad])
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]


def test_group_advantages_group_scale_matches_hand_computation():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0])
    adv = algo.group_advantages(rewards, group_size=4, scale="group")
    # group 1: mean 0.25, sample std sqrt(((0.75)^2 + 3*(0.25)^2)/3) = 0.5
    assert adv[:4].tolist() == pytest.approx([0.75 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001])
    # group 2 has zero variance: exactly zero advantage
    assert adv[4:].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert algo.zero_variance_groups(rewards, 4).tolist() == [False, True]


def test_group_advantages_batch_and_none_scales():
    rewards = torch.tensor([1.0, 3.0, 0.0, 0.0])
    centred = [-1.0, 1.0, 0.0, 0.0]
    assert algo.group_advantages(rewards, 2, "none").tolist() == centred
    batch_std = torch.tensor([1.0, 3.0, 0.0, 0.0]).std().item()  # 1.4142…
    expected = [c / (batch_std + 1e-4) for c in centred]
    assert algo.group_advantages(rewards, 2, "batch").tolist() == pytest.approx(expected)
    with pytest.raises(ValueError):
        algo.group_advantages(rewards, 3, "group")  # 4 is not a multiple of 3
    with pytest.raises(ValueError):
        algo.group_advantages(rewards, 2, "bogus")


def test_k3_kl_values_and_zero_at_equality():
    logp = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.0, -1.0]])
    kl = algo.k3_kl(logp, ref)
    # d = ref - logp = [0, 1]: exp(0)-0-1 = 0; exp(1)-1-1 = e-2
    assert kl.tolist()[0] == pytest.approx([0.0, math.e - 2.0])
    assert (algo.k3_kl(torch.randn(3, 4), torch.randn(3, 4)) >= 0).all()


def _inputs():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -0.5]], requires_grad=True)
    ref = torch.tensor([[-1.0, -1.0, -3.0], [-0.5, -0.5, -0.5]])
    adv = torch.tensor([2.0, -1.0])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    return logp, ref, adv, mask


def test_grpo_loss_is_the_paper_per_sequence_mean():
    logp, ref, adv, mask = _inputs()
    loss, stats = algo.policy_loss(logp, logp.detach(), ref, adv, mask, beta=0.1, loss_type="grpo")
    kl_01 = math.e - 2.0  # the only non-zero KL token: row 0, t 1
    row0 = (-2.0 * 2 + 0.1 * kl_01) / 2  # two kept tokens: −A each, + β·KL at t=1
    row1 = (1.0 * 3) / 3
    assert loss.item() == pytest.approx((row0 + row1) / 2)
    assert stats["kl"].item() == pytest.approx(kl_01 / 5)
    assert stats["clip_ratio"].item() == 0.0
    loss.backward()
    # d loss / d logp: −A/|o|/N for kept tokens, plus β·(1 − exp(ref − logp))/|o|/N on the KL token
    expected = torch.tensor([[-2.0 / 2 / 2, (-2.0 + 0.1 * (1 - math.e)) / 2 / 2, 0.0],
                             [1.0 / 3 / 2, 1.0 / 3 / 2, 1.0 / 3 / 2]])
    assert torch.allclose(logp.grad, expected, atol=1e-6)


def test_dapo_and_dr_grpo_aggregations():
    logp, ref, adv, mask = _inputs()
    per_token_sum = -2.0 * 2 + 1.0 * 3  # β = 0
    dapo, _ = algo.policy_loss(logp, logp.detach(), ref, adv, mask, beta=0.0, loss_type="dapo")
    assert dapo.item() == pytest.approx(per_token_sum / 5)
    dr, _ = algo.policy_loss(logp, logp.detach(), ref, adv, mask, beta=0.0, loss_type="dr_grpo",
                             max_completion_tokens=4)
    assert dr.item() == pytest.approx(per_token_sum / (2 * 4))
    # whole-batch denominators for gradient accumulation
    dapo_acc, _ = algo.policy_loss(logp, logp.detach(), ref, adv, mask, beta=0.0, loss_type="dapo", num_tokens=10)
    assert dapo_acc.item() == pytest.approx(per_token_sum / 10)


def test_clipped_ratio_against_old_logprobs():
    old = torch.zeros(1, 2)
    logp = torch.tensor([[math.log(1.5), math.log(0.5)]], requires_grad=True)  # ratios 1.5 and 0.5
    mask = torch.ones(1, 2)
    # A > 0: ratio 1.5 clips at 1.2 (no gradient), ratio 0.5 is unclipped (min picks it)
    loss, stats = algo.policy_loss(logp, old, None, torch.tensor([1.0]), mask, beta=0.0, epsilon=0.2)
    assert loss.item() == pytest.approx(-(1.2 + 0.5) / 2)
    assert stats["clip_ratio"].item() == pytest.approx(0.5)
    loss.backward()
    assert logp.grad.tolist()[0] == pytest.approx([0.0, -0.5 / 2])
    # asymmetric ε_high = 0.6 lets the 1.5 ratio through
    loss_hi, stats_hi = algo.policy_loss(logp, old, None, torch.tensor([1.0]), mask, beta=0.0, epsilon=0.2,
                                         epsilon_high=0.6)
    assert loss_hi.item() == pytest.approx(-(1.5 + 0.5) / 2)
    assert stats_hi["clip_ratio"].item() == 0.0
    # A < 0: ratio 0.5 clips at 0.8 (min(−0.5, −0.8) = −0.8 → loss 0.8)
    loss_neg, _ = algo.policy_loss(logp, old, None, torch.tensor([-1.0]), mask, beta=0.0, epsilon=0.2)
    assert loss_neg.item() == pytest.approx((1.5 + 0.8) / 2)


def test_on_policy_ratio_is_one_with_the_gradient_of_logp():
    logp = torch.tensor([[-0.3, -0.7]], requires_grad=True)
    loss, _ = algo.policy_loss(logp, logp.detach(), None, torch.tensor([3.0]), torch.ones(1, 2), beta=0.0)
    assert loss.item() == pytest.approx(-3.0)
    loss.backward()
    assert logp.grad.tolist()[0] == pytest.approx([-1.5, -1.5])
