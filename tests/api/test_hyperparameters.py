"""How "auto" hyperparameters resolve, and which values are refused before a job exists (pure
functions; the rules are also in the README)."""

import math

import pytest

from app.jobs.hyperparameters import (
    DEFAULT_LORA_TARGETS,
    MAX_STEPS,
    HyperparameterError,
    Hyperparameters,
    ResolvedHyperparameters,
    UnknownHyperparameter,
    parse,
    resolve,
)


def test_all_auto_follows_the_paper():
    hp = resolve(Hyperparameters(), train_rows=400, val_rows=100, model_parameters=2_000_000_000)
    assert hp.batch_size == 16 and hp.group_size == 8 and hp.beta == 0.04
    assert hp.max_steps == 200 and hp.n_epochs == 8  # 25 steps per pass × 8 passes
    assert hp.learning_rate == pytest.approx(5e-5) and hp.checkpoint_interval == 50
    assert hp.eval_interval == 50 and hp.eval_samples == 64
    assert hp.lora.target_modules == list(DEFAULT_LORA_TARGETS) and hp.gradient_checkpointing is True


def test_small_datasets_clamp_epochs_and_batch():
    hp = resolve(Hyperparameters(), train_rows=3)
    assert hp.batch_size == 3 and hp.n_epochs == 50 and hp.max_steps == 50 and hp.eval_samples == 0


def test_explicit_max_steps_sets_the_epochs_shown():
    hp = resolve(Hyperparameters(max_steps=3, batch_size=2), train_rows=6)
    assert hp.max_steps == 3 and hp.n_epochs == 1


def test_multiplier_scales_the_auto_learning_rate_only():
    assert resolve(Hyperparameters(learning_rate_multiplier=2), train_rows=8).learning_rate == pytest.approx(1e-4)
    assert resolve(Hyperparameters(learning_rate=1e-3, learning_rate_multiplier=2), train_rows=8).learning_rate == 1e-3


def test_eval_samples_are_capped_by_the_validation_rows():
    assert resolve(Hyperparameters(eval_samples=500), train_rows=8, val_rows=30).eval_samples == 30
    assert resolve(Hyperparameters(eval_samples=5), train_rows=8, val_rows=30).eval_samples == 5


@pytest.mark.parametrize("parameters, expected", [(188_416, False), (1_000_000_000, False), (2_000_000_000, True),
                                                  (None, True)])
def test_auto_gradient_checkpointing_follows_the_model_size(parameters, expected):
    assert resolve(Hyperparameters(), train_rows=8, model_parameters=parameters).gradient_checkpointing is expected
    # an explicit choice wins over the size
    assert resolve(parse({"gradient_checkpointing": False}), train_rows=8,
                   model_parameters=parameters).gradient_checkpointing is False


def test_accumulation_that_does_not_divide_the_batch_is_refused_naming_it():
    with pytest.raises(HyperparameterError) as caught:
        resolve(parse({"batch_size": 6, "gradient_accumulation_steps": 4}), train_rows=10)
    assert caught.value.name == "gradient_accumulation_steps" and "batch_size (6)" in caught.value.message
    with pytest.raises(HyperparameterError, match="from auto"):  # auto batch = min(16, rows) = 6
        resolve(parse({"gradient_accumulation_steps": 4}), train_rows=6)
    assert resolve(parse({"batch_size": 8, "gradient_accumulation_steps": 4}), train_rows=10).batch_size == 8


def test_min_pixels_above_max_pixels_is_refused():
    with pytest.raises(HyperparameterError) as caught:
        resolve(parse({"min_pixels": 500_000, "max_pixels": 401_408}), train_rows=4)
    assert caught.value.name == "min_pixels"


def test_epochs_that_amount_to_too_many_steps_are_refused():
    with pytest.raises(HyperparameterError) as caught:
        resolve(parse({"n_epochs": 1000, "batch_size": 1}), train_rows=100_000)
    assert caught.value.name == "n_epochs" and str(MAX_STEPS) in caught.value.message


@pytest.mark.parametrize("raw, name", [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": "4"}, "batch_size"),  # no coercion of numeric strings
    ({"batch_size": True}, "batch_size"),  # a bool is not an int
    ({"batch_size": 4.0}, "batch_size"),
    ({"learning_rate": "NaN"}, "learning_rate"),
    ({"learning_rate": math.nan}, "learning_rate"),
    ({"learning_rate": math.inf}, "learning_rate"),
    ({"learning_rate": -1e-4}, "learning_rate"),
    ({"beta": -math.inf}, "beta"),
    ({"max_steps": 10**12}, "max_steps"),
    ({"max_steps": 2**63}, "max_steps"),
    ({"eval_samples": 0}, "eval_samples"),
    ({"temperature": True}, "temperature"),
    ({"max_pixels": 10**10}, "max_pixels"),
    ({"lora": {"r": "8"}}, "lora.r"),
    ({"lora": {"alpha": math.nan}}, "lora.alpha"),
    ({"lora": {"target_modules": ["q_proj; rm -rf"]}}, "lora.target_modules"),
    ({"lora": "big"}, "lora"),
    ({"gradient_checkpointing": "yes"}, "gradient_checkpointing"),
    ({"gradient_checkpointing": 1}, "gradient_checkpointing"),
    ({"reasoning_effort": "high"}, "reasoning_effort"),  # accepted only as its default: nothing to set
    ({"compute_multiplier": 2.0}, "compute_multiplier"),
])
def test_bad_values_are_refused_naming_the_field(raw, name):
    with pytest.raises(HyperparameterError) as caught:
        parse(raw)
    assert caught.value.name == name and name in caught.value.message
    assert not isinstance(caught.value, UnknownHyperparameter)


def test_unknown_names_are_refused_naming_them():
    for raw, name in (({"learnin_rate": 1e-4}, "learnin_rate"), ({"lora": {"rank": 8}}, "lora.rank"),
                      ({"dry_run_samples": 4}, "dry_run_samples")):  # a job field, not a hyperparameter
        with pytest.raises(UnknownHyperparameter) as caught:
            parse(raw)
        assert caught.value.name == name


def test_the_openai_defaults_are_accepted():
    hp = parse({"reasoning_effort": "default", "compute_multiplier": "auto", "n_epochs": "auto",
                "learning_rate_multiplier": 2})
    assert hp.learning_rate_multiplier == 2.0


def test_a_resolved_set_round_trips_through_json():
    hp = resolve(parse({"lora": {"alpha": 16}, "batch_size": 4}), train_rows=8, val_rows=2)
    stored = hp.model_dump(mode="json")
    assert ResolvedHyperparameters.model_validate(stored) == hp
    assert "auto" not in stored.values()
