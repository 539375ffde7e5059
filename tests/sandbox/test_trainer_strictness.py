"""The simulated trainer fails wherever the real one would fail a paid run: the LyCORIS input, `csv`
dataset entries, values its parser cannot read, a run nothing sizes, and the cog's order of checks
(trainer-contract 1.1, 2.1, 2.2, 2.7)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.sandbox.conftest import create, trainer_config, trainer_input, upload, wait_until

LYCORIS = {"algo": "lokr", "multiplier": 1.0, "linear_dim": 16, "linear_alpha": 1, "factor": 16}
STEPS_AND_EPOCHS = (
    "When using --max_train_steps (MAX_NUM_STEPS), you must set --num_train_epochs (NUM_EPOCHS) to 0."
)
NO_STOP = "You must specify either --max_train_steps or --num_train_epochs with a value > 0"


async def run(api: httpx.AsyncClient, **inputs: object) -> dict[str, Any]:
    created = await create(api, {**(await trainer_input(api)), **inputs})
    return await wait_until(api, f"/v1/predictions/{created['id']}")


def config(**changes: Any) -> str:
    """`trainer_config()` with keys changed, or removed when given None."""
    values = json.loads(trainer_config())
    values.update(changes)
    return json.dumps({key: value for key, value in values.items() if value is not None})


async def test_lycoris_without_a_lycoris_config_fails_at_start(api: httpx.AsyncClient) -> None:
    done = await run(api, config_json=config(lora_type="lycoris"))
    assert (done["status"], done["error"]) == (
        "failed",
        "--lora_type=lycoris requires you to add a JSON configuration file location with --lycoris_config",
    )
    lines = str(done["logs"]).splitlines()
    assert lines[1] == "[TRAINING] Status: training_failed" and lines[-1] == "[COG] Webhook receiver stopped"
    assert "[STAGE] ⏳ Loading base model" not in lines


async def test_a_lycoris_path_in_the_config_is_not_in_the_container(api: httpx.AsyncClient) -> None:
    done = await run(api, config_json=config(lora_type="lycoris", lycoris_config="env/lycoris_config.json"))
    assert str(done["error"]).startswith("Could not find lycoris config at 'env/lycoris_config.json'")


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("{bad", "lycoris_config looks like JSON but failed to parse: "),
        ("config/lycoris.json", "lycoris_config file not found: config/lycoris.json"),
    ],
)
async def test_the_lycoris_input_is_read_like_every_string_input(
    api: httpx.AsyncClient, value: str, error: str
) -> None:
    done = await run(api, config_json=config(lora_type="lycoris"), lycoris_config=value)
    assert done["status"] == "failed" and str(done["error"]).startswith(error)
    assert done["logs"] == ""  # read with the inputs, before anything starts


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"algo": "lokr"}, "lycoris_config JSON must contain multiplier key"),
        ({"multiplier": 1}, "lycoris_config JSON must contain algo key"),
        (
            {"algo": "lokr", "multiplier": 1, "linear_alpha": 1},
            "lycoris_config JSON must contain linear_dim key if full_matrix is not set.",
        ),
        (
            {"algo": "lokr", "multiplier": 1, "linear_dim": 4},
            "lycoris_config JSON must contain linear_alpha key",
        ),
    ],
)
async def test_the_lycoris_json_needs_the_keys_the_trainer_asserts(
    api: httpx.AsyncClient, spec: dict[str, Any], error: str
) -> None:
    done = await run(api, config_json=config(lora_type="lycoris"), lycoris_config=json.dumps(spec))
    assert (done["status"], done["error"]) == ("failed", error)


async def test_an_inline_lycoris_config_trains(api: httpx.AsyncClient) -> None:
    done = await run(api, config_json=config(lora_type="lycoris"), lycoris_config=json.dumps(LYCORIS))
    assert done["status"] == "succeeded", done["error"]
    full = {"algo": "lokr", "multiplier": 1, "full_matrix": True, "linear_alpha": 1}
    done = await run(api, config_json=config(lora_type="lycoris"), lycoris_config=json.dumps(full))
    assert done["status"] == "succeeded", done["error"]


async def test_a_csv_dataset_entry_fails_for_want_of_its_file(api: httpx.AsyncClient) -> None:
    entries = [{"id": "shots", "type": "csv", "csv_file": "/home/me/shots.csv", "caption_strategy": "csv"}]
    done = await run(api, dataloader_json=json.dumps(entries))
    assert (done["status"], done["error"]) == (
        "failed",
        "Dataset `shots` (type csv): CSV file not found: /home/me/shots.csv",
    )
    disabled = [{**entries[0], "disabled": True}, {"id": "hf", "type": "huggingface", "dataset_name": "a/b"}]
    done = await run(api, dataloader_json=json.dumps(disabled))
    assert done["status"] == "succeeded", done["error"]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"max_train_steps": "abc"}, "argument --max_train_steps: invalid int value: 'abc'"),
        ({"max_train_steps": 10.0}, "argument --max_train_steps: invalid int value: '10.0'"),
        ({"max_train_steps": True}, "argument --max_train_steps: expected one argument"),
        ({"learning_rate": "fast"}, "argument --learning_rate: invalid float value: 'fast'"),
        (
            {"gradient_checkpointing": "maybe"},
            "argument --gradient_checkpointing: Expected a boolean value, got 'maybe'",
        ),
        (
            {"lora_type": "loha"},
            "argument --lora_type: invalid choice: 'loha' (choose from 'standard', 'lycoris')",
        ),
        ({"model_family": None}, "the following arguments are required: --model_family"),
        ({"model_family": ""}, "the following arguments are required: --model_family"),
        (
            {"model_family": "nonexistent", "learning_rat": 1},
            "argument --model_family: invalid choice: 'nonexistent'",
        ),
    ],
)
async def test_values_the_parser_cannot_read_fail_the_run(
    api: httpx.AsyncClient, changes: dict[str, Any], error: str
) -> None:
    """argparse's own words, in its order (a bad value before an unknown key); the logs follow the
    parser's error path like an unknown key's."""
    done = await run(api, config_json=config(**changes))
    assert done["status"] == "failed" and str(done["error"]).startswith(error)
    assert f"argparse.ArgumentError: {error}" in str(done["logs"])
    assert "[STAGE]" not in str(done["logs"])


async def test_a_bad_config_value_fails_even_under_the_steps_input(api: httpx.AsyncClient) -> None:
    """The cog passes the config's `--max_train_steps` and then the input's; argparse reads both."""
    done = await run(api, config_json=config(max_train_steps="abc"), max_train_steps=10)
    assert done["error"] == "argument --max_train_steps: invalid int value: 'abc'"


async def test_values_the_parser_reads(api: httpx.AsyncClient) -> None:
    changes = {
        "model_family": " FLUX ",
        "max_train_steps": "4",
        "gradient_checkpointing": "on",
        "use_ema": False,
    }
    done = await run(api, config_json=config(**changes))
    assert done["status"] == "succeeded", done["error"]
    assert "-  Total optimization steps = 4" in str(done["logs"])


@pytest.mark.parametrize(
    ("changes", "inputs"),
    [
        ({"max_train_steps": 0, "num_train_epochs": 0}, {}),
        ({"max_train_steps": None, "num_train_epochs": 0}, {}),
        ({}, {"max_train_steps": -5}),
        ({"max_train_steps": None, "num_train_epochs": -1}, {}),
    ],
)
async def test_a_run_nothing_sizes_fails_once_the_data_is_set_up(
    api: httpx.AsyncClient, changes: dict[str, Any], inputs: dict[str, Any]
) -> None:
    done = await run(api, config_json=config(**changes), **inputs)
    assert (done["status"], done["error"]) == ("failed", NO_STOP)
    logs = str(done["logs"])
    assert "[STAGE] ✓ Configuring data backends" in logs and "Total optimization steps" not in logs
    assert "[TRAINING] Status: training_failed" in logs
    assert logs.splitlines()[-1] == "[COG] Webhook receiver stopped"


async def test_steps_with_epochs_left_at_their_default_fail_at_start(api: httpx.AsyncClient) -> None:
    """`num_train_epochs` defaults to 1, and the trainer refuses steps together with epochs."""
    done = await run(api, config_json=config(num_train_epochs=None))
    assert (done["status"], done["error"]) == ("failed", STEPS_AND_EPOCHS)
    done = await run(api, config_json=config(max_train_steps=0, num_train_epochs=1), max_train_steps=10)
    assert done["error"] == STEPS_AND_EPOCHS


async def test_neither_stop_condition_trains_one_epoch(api: httpx.AsyncClient) -> None:
    """No invented step count: the default of one epoch over the 3 images."""
    done = await run(api, config_json=config(max_train_steps=None, num_train_epochs=None))
    assert done["status"] == "succeeded", done["error"]
    assert "-  Total optimization steps = 3" in str(done["logs"])


async def test_the_config_is_merged_before_the_data_is_staged(api: httpx.AsyncClient) -> None:
    """trainer-contract 2.1: merge (step 4) before data (step 5), so an empty config is named first,
    and the archive is not fetched for a run that cannot start."""
    created = await create(api, {"config_json": "{}"})
    done = await wait_until(api, f"/v1/predictions/{created['id']}")
    assert done["error"] == "No training config found at config/config.json."
    uploaded = await upload(api)
    await api.delete(f"/v1/files/{uploaded['id']}")
    created = await create(api, {"config_json": "{}", "images": uploaded["urls"]["get"]})
    done = await wait_until(api, f"/v1/predictions/{created['id']}")
    assert done["error"] == "No training config found at config/config.json."


async def test_a_hub_run_with_validation_uploads_its_samples_first(api: httpx.AsyncClient) -> None:
    hub = {"hub_model_id": "acme/sks-lora", "hf_token": "hf_" + "x" * 30}
    validated = config(validation_prompt="a photo of sks", validation_step_interval=5)
    done = await run(api, config_json=validated, **hub)
    assert done["status"] == "succeeded", done["error"]
    statuses = [line for line in str(done["logs"]).splitlines() if line.startswith("[TRAINING] Status:")]
    assert statuses == [
        "[TRAINING] Status: uploading_validation_samples",
        "[TRAINING] Status: uploading_model",
        "[TRAINING] Status: model_available",
    ]
    done = await run(api, **hub)  # no validation, no samples to upload
    assert "uploading_validation_samples" not in str(done["logs"])
