"""The trainer's argument list: both spellings of a key, unknown keys named with a close match, the
extra names a newer trainer may know, values its parser cannot read, a run without a length, and
agreement with the sandbox trainer's parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import simpletuner_cloud
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.sandbox.trainer_options import BOOL_OPTIONS, FLOAT_OPTIONS, INT_OPTIONS, KNOWN_OPTIONS
from simpletuner_cloud.sandbox.trainer_options import CHOICES as SANDBOX_CHOICES
from simpletuner_cloud.trainer.arguments import (
    BOOL_ARGUMENTS,
    CHOICES,
    FLOAT_ARGUMENTS,
    INT_ARGUMENTS,
    KNOWN_ARGUMENTS,
    MODEL_FAMILIES,
    check_argument_values,
    check_lycoris,
    check_run_length,
    check_trainer_arguments,
    unknown_arguments,
)


def test_dashed_and_plain_keys_are_the_same_argument() -> None:
    assert unknown_arguments({"--max_train_steps": 10, "learning_rate": 1e-4}) == []


def test_an_unknown_key_is_named_with_a_suggestion() -> None:
    with pytest.raises(CloudError) as caught:
        check_trainer_arguments({"learning_rat": 1e-4, "max_train_steps": 10, "totally_made_up": 1})
    error = caught.value
    assert error.code == "trainer_argument_unknown" and error.status == 422
    assert error.details == {
        "unknown": ["learning_rat", "totally_made_up"],
        "suggestions": {"learning_rat": "learning_rate"},
    }
    assert error.message.startswith(
        "The trainer does not know the config options `learning_rat`, `totally_made_up`"
    )
    assert error.hint.startswith("Did you mean `learning_rate` for `learning_rat`?")
    assert "SIMPLETUNER_EXTRA_TRAINER_ARGUMENTS" in error.hint


def test_extra_names_extend_the_list() -> None:
    check_trainer_arguments({"brand_new_option": 1}, extra=["brand_new_option", " "])


def test_the_client_accepts_exactly_what_the_sandbox_trainer_parses() -> None:
    # A key the client let through but the trainer's parser refused would be a paid failure.
    assert set(KNOWN_ARGUMENTS) == set(KNOWN_OPTIONS)


BASE = {"model_family": "flux", "max_train_steps": 100, "num_train_epochs": 0}


@pytest.mark.parametrize(
    ("changes", "argument", "problem"),
    [
        ({"max_train_steps": "abc"}, "max_train_steps", "must be an integer, got 'abc'"),
        ({"max_train_steps": 10.0}, "max_train_steps", "must be an integer, got '10.0'"),
        ({"max_train_steps": True}, "max_train_steps", "needs a value, not true"),
        ({"learning_rate": "fast"}, "learning_rate", "must be a number, got 'fast'"),
        ({"gradient_checkpointing": "maybe"}, "gradient_checkpointing", "must be true or false, got 'maybe'"),
        ({"lora_type": "loha"}, "lora_type", "must be one of standard, lycoris; got 'loha'"),
        ({"model_family": "nonexistent"}, "model_family", None),
        ({"model_family": None}, "model_family", "is missing"),
        ({"--model_family": "", "model_family": None}, "model_family", "is missing"),
    ],
)
def test_a_value_the_parser_cannot_read_is_refused_by_name(
    changes: dict[str, object], argument: str, problem: str | None
) -> None:
    with pytest.raises(CloudError) as caught:
        check_argument_values({**BASE, **changes})
    error = caught.value
    assert error.code == "trainer_argument_invalid" and error.status == 422
    assert error.details["argument"] == argument and f"`{argument}`" in error.message and error.hint
    if problem is not None:
        assert error.details["problem"] == problem
    else:
        assert "SIMPLETUNER_EXTRA_MODEL_FAMILIES" in error.hint


def test_values_the_parser_reads_pass() -> None:
    check_argument_values({**BASE, "--model_family": " SDXL ", "max_train_steps": "10", "use_ema": "on"})
    check_argument_values({**BASE, "gradient_checkpointing": False, "learning_rate": "1e-4", "seed": "x"})


def test_model_families_extend_or_go_unchecked() -> None:
    check_argument_values({**BASE, "model_family": "z_image"}, ["z_image", " "])
    check_argument_values({**BASE, "model_family": "z_image"}, None)  # a caller that cannot know them
    with pytest.raises(CloudError):
        check_argument_values({**BASE, "model_family": None}, None)  # required all the same


def test_lycoris_needs_its_json() -> None:
    check_lycoris({"lora_type": "standard"}, None)
    check_lycoris({"lora_type": "lycoris"}, {"algo": "lokr"})
    with pytest.raises(CloudError) as caught:
        check_lycoris({"lora_type": "Lycoris"}, None)
    assert caught.value.code == "trainer_argument_invalid"
    assert caught.value.details["argument"] == "lycoris_config"


@pytest.mark.parametrize(
    ("options", "argument", "problem"),
    [
        ({"max_train_steps": 0, "num_train_epochs": 0}, "max_train_steps", "is 0 and num_train_epochs is 0"),
        ({}, "max_train_steps", "is missing and num_train_epochs is missing"),
        ({"max_train_steps": -5, "num_train_epochs": 0}, "max_train_steps", "is below 0 (-5)"),
        ({"num_train_epochs": -1}, "num_train_epochs", "is below 0 (-1)"),
    ],
)
def test_a_run_without_a_length_is_refused(options: dict[str, object], argument: str, problem: str) -> None:
    with pytest.raises(CloudError) as caught:
        check_run_length({"model_family": "flux", **options})
    assert caught.value.code == "trainer_argument_invalid"
    assert caught.value.details == {"argument": argument, "problem": problem}


def test_a_run_with_a_length_passes() -> None:
    check_run_length({"max_train_steps": 10, "num_train_epochs": 0})
    check_run_length({"--max_train_steps": "10"})
    check_run_length({"max_train_steps": 0, "num_train_epochs": 2})


def test_the_client_types_values_like_the_sandbox_trainers_parser() -> None:
    assert (INT_ARGUMENTS, FLOAT_ARGUMENTS, BOOL_ARGUMENTS) == (INT_OPTIONS, FLOAT_OPTIONS, BOOL_OPTIONS)
    assert {**CHOICES, "model_family": MODEL_FAMILIES} == SANDBOX_CHOICES


def test_the_shipped_example_passes_every_check() -> None:
    example = Path(simpletuner_cloud.__file__).parent / "examples" / "flux-lora" / "config.json"
    options = json.loads(example.read_text())
    check_trainer_arguments(options)
    check_argument_values(options)
    check_run_length(options)
