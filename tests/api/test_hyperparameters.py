"""How "auto" hyperparameters resolve (pure functions; the rules are also in the README)."""

import pytest

from app.jobs.hyperparameters import Hyperparameters, check, resolve


def test_all_auto_follows_the_paper():
    hp = resolve(Hyperparameters(), train_rows=400, val_rows=100)
    assert hp["batch_size"] == 16 and hp["group_size"] == 8 and hp["beta"] == 0.04
    assert hp["max_steps"] == 200 and hp["n_epochs"] == 8  # 25 steps per pass × 8 passes
    assert hp["learning_rate"] == pytest.approx(5e-5) and hp["checkpoint_interval"] == 50
    assert hp["eval_interval"] == 50 and hp["eval_samples"] == 64


def test_small_datasets_clamp_epochs_and_batch():
    hp = resolve(Hyperparameters(), train_rows=3)
    assert hp["batch_size"] == 3 and hp["n_epochs"] == 50 and hp["max_steps"] == 50 and hp["eval_samples"] == 0


def test_explicit_max_steps_sets_the_epochs_shown():
    hp = resolve(Hyperparameters(max_steps=3, batch_size=2), train_rows=6)
    assert hp["max_steps"] == 3 and hp["n_epochs"] == 1


def test_multiplier_scales_the_auto_learning_rate_only():
    assert resolve(Hyperparameters(learning_rate_multiplier=2), train_rows=8)["learning_rate"] == pytest.approx(1e-4)
    assert resolve(Hyperparameters(learning_rate=1e-3, learning_rate_multiplier=2), train_rows=8)["learning_rate"] == 1e-3


def test_non_positive_values_are_refused():
    with pytest.raises(ValueError, match="batch_size"):
        check(Hyperparameters(batch_size=0))
