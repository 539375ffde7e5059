"""The trainer's argument list: both spellings of a key, unknown keys named with a close match, the
extra names a newer trainer may know, and agreement with the sandbox trainer's parser."""

from __future__ import annotations

import pytest

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.sandbox.trainer_options import KNOWN_OPTIONS
from simpletuner_cloud.trainer.arguments import KNOWN_ARGUMENTS, check_trainer_arguments, unknown_arguments


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
