"""Reading config.json + multidatabackend.json: spellings, wrappers, path resolution, environments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simpletuner_cloud.datasets.configs import load_inline, normalise_datasets, normalise_options
from simpletuner_cloud.datasets.environments import list_environments, load_environment, load_training_config
from simpletuner_cloud.errors import CloudError
from tests.datasets.factory import local_entry, write_environment


def test_options_strip_dashes_and_unwrap_the_webui_wrapper() -> None:
    raw = {"_metadata": {"v": 1}, "config": {"--model_family": "flux", "lora_rank": 16, "--lora_rank": 16}}
    assert normalise_options(raw) == {"model_family": "flux", "lora_rank": 16}


def test_conflicting_duplicate_options_are_refused() -> None:
    with pytest.raises(CloudError) as caught:
        normalise_options({"--learning_rate": 1e-4, "learning_rate": 2e-4})
    assert caught.value.code == "config_invalid"
    assert "learning_rate" in caught.value.message


def test_options_must_be_an_object() -> None:
    with pytest.raises(CloudError) as caught:
        normalise_options(["not", "a", "dict"])
    assert caught.value.code == "config_invalid"


def test_dataset_list_as_list_or_datasets_object() -> None:
    entry = local_entry()
    assert normalise_datasets([entry]) == [entry]
    assert normalise_datasets({"_metadata": {}, "datasets": [entry]}) == [entry]
    with pytest.raises(CloudError):
        normalise_datasets({"id": "x"})


def test_environment_resolves_its_dataloader_against_the_configs_dir(tmp_path: Path) -> None:
    write_environment(tmp_path, "env")
    config = load_environment("env", tmp_path)
    assert config.dataloader_path == tmp_path / "env" / "multidatabackend.json"
    assert config.datasets[0]["id"] == "plushie"
    assert config.problems == []
    assert config.source == "environment"


def test_leading_config_prefix_and_absolute_paths_resolve(tmp_path: Path) -> None:
    write_environment(tmp_path, "env", options={"data_backend_config": "config/env/multidatabackend.json"})
    assert load_environment("env", tmp_path).dataloader_path == tmp_path / "env" / "multidatabackend.json"
    other = tmp_path / "elsewhere.json"
    other.write_text(json.dumps([local_entry("other")]))
    write_environment(tmp_path, "abs", options={"data_backend_config": str(other)})
    assert load_environment("abs", tmp_path).datasets[0]["id"] == "other"


def test_without_data_backend_config_the_file_beside_config_json_is_used(tmp_path: Path) -> None:
    folder = write_environment(tmp_path, "env")
    config = json.loads((folder / "config.json").read_text())
    del config["data_backend_config"]
    (folder / "config.json").write_text(json.dumps(config))
    assert load_environment("env", tmp_path).datasets[0]["id"] == "plushie"


def test_a_missing_dataloader_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    write_environment(tmp_path, "env", options={"data_backend_config": "nowhere/multidatabackend.json"})
    (tmp_path / "env" / "multidatabackend.json").unlink()
    config = load_environment("env", tmp_path)
    assert not config.dataloader_found
    assert any("nowhere/multidatabackend.json" in problem for problem in config.problems)


def test_invalid_json_names_the_file_and_line(tmp_path: Path) -> None:
    folder = write_environment(tmp_path, "env")
    (folder / "config.json").write_text('{"model_family": "flux",\n "oops"}')
    with pytest.raises(CloudError) as caught:
        load_environment("env", tmp_path)
    assert caught.value.code == "config_invalid"
    assert "line 2" in caught.value.message


def test_problems_list_missing_model_family_and_duplicate_ids(tmp_path: Path) -> None:
    write_environment(
        tmp_path, "env", datasets=[local_entry("a"), local_entry("a")], options={"model_family": ""}
    )
    problems = load_environment("env", tmp_path).problems
    assert "config.json does not set model_family." in problems
    assert "Dataset id `a` is used twice." in problems


def test_listing_environments_skips_non_environments_and_reports_broken_ones(tmp_path: Path) -> None:
    write_environment(tmp_path, "good")
    broken = write_environment(tmp_path, "broken")
    (broken / "config.json").write_text("{")
    (tmp_path / "dataloaders").mkdir()
    (tmp_path / "default.json").write_text("{}")
    summaries = list_environments(tmp_path)
    assert [s.name for s in summaries] == ["broken", "good"]
    assert summaries[0].problems and "not valid JSON" in summaries[0].problems[0]
    assert (summaries[1].model_family, summaries[1].datasets, summaries[1].problems) == ("flux", 1, [])
    assert list_environments(tmp_path / "missing") == []


def test_a_reference_can_be_a_name_a_folder_or_a_config_path(tmp_path: Path) -> None:
    folder = write_environment(tmp_path / "configs", "env")
    assert load_training_config("env", tmp_path / "configs").source == "environment"
    assert load_training_config(str(folder), tmp_path / "configs").source == "path"
    assert load_training_config(str(folder / "config.json"), tmp_path / "configs").name == "env"
    with pytest.raises(CloudError) as caught:
        load_training_config("nope", tmp_path / "configs")
    assert caught.value.code == "config_missing"


def test_environment_names_cannot_escape_the_configs_dir(tmp_path: Path) -> None:
    with pytest.raises(CloudError) as caught:
        load_environment("../etc", tmp_path)
    assert caught.value.code == "config_invalid"


def test_inline_json_and_lycoris(tmp_path: Path) -> None:
    config = load_inline(
        {"--model_family": "flux", "lora_type": "lycoris"}, [local_entry()], {"algo": "lokr"}
    )
    assert config.lycoris == {"algo": "lokr"} and config.problems == []
    folder = write_environment(tmp_path, "env", options={"lora_type": "lycoris"})
    assert "LyCORIS config file was not found" in " ".join(load_environment("env", tmp_path).problems)
    (folder / "lycoris_config.json").write_text('{"algo": "lokr", "multiplier": 1.0}')
    assert load_environment("env", tmp_path).lycoris == {"algo": "lokr", "multiplier": 1.0}
