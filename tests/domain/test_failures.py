"""The trainer's start-up refusals are told apart from an unknown key and from a generic failure."""

from __future__ import annotations

import pytest

from simpletuner_cloud.domain.failures import classify_failure


@pytest.mark.parametrize(
    "error",
    [
        "argument --max_train_steps: invalid int value: 'abc'",
        "argument --model_family: invalid choice: 'x' (choose from 'flux', 'sdxl')",
        "argument --gradient_checkpointing: Expected a boolean value, got 'maybe'",
        "the following arguments are required: --model_family",
        "--lora_type=lycoris requires you to add a JSON configuration file location with --lycoris_config",
        "lycoris_config JSON must contain algo key",
        "When using --max_train_steps (MAX_NUM_STEPS), you must set --num_train_epochs (NUM_EPOCHS) to 0.",
        "You must specify either --max_train_steps or --num_train_epochs with a value > 0",
    ],
)
def test_start_up_refusals_are_trainer_argument_invalid(error: str) -> None:
    code, hint = classify_failure(error)
    assert code == "trainer_argument_invalid" and "config.json" in hint


def test_an_unknown_key_keeps_its_own_code() -> None:
    assert classify_failure("unrecognized arguments: --learning_rat=0.0001")[0] == "trainer_argument_unknown"
