"""Read SimpleTuner configs: `config.json` + `multidatabackend.json` from a named environment in the
configs folder, an explicit path, or inline JSON. Pure reading; what to upload is decided in `plan.py`."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simpletuner_cloud.errors import CloudError

ENVIRONMENT_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
JSON_ONLY_HINT = "Only JSON configs are read (config.json + multidatabackend.json); TOML and .env are not."


@dataclass
class TrainingConfig:
    """One parsed training setup. `base_dir` anchors relative dataset paths (the environment folder)."""

    options: dict[str, Any]
    datasets: list[dict[str, Any]]
    name: str | None = None
    source: str = "inline"  # environment | path | inline
    config_path: Path | None = None
    dataloader_path: Path | None = None
    base_dir: Path | None = None
    search_dirs: list[Path] = field(default_factory=list)
    lycoris: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    dataloader_found: bool = True

    @property
    def model_family(self) -> str | None:
        value = self.options.get("model_family")
        return str(value) if value is not None else None


def config_error(message: str, hint: str = JSON_ONLY_HINT) -> CloudError:
    return CloudError(message, code="config_invalid", hint=hint)


def normalise_options(raw: Any, where: str = "config.json") -> dict[str, Any]:
    """Unwrap `{"config": {...}}`, strip leading `--`, and refuse a key given twice with different values."""
    if isinstance(raw, dict) and isinstance(raw.get("config"), dict):
        raw = raw["config"]
    if not isinstance(raw, dict):
        raise config_error(f"{where} must hold a JSON object of training options.")
    options: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).lstrip("-")
        if not name:
            raise config_error(f"{where} has an empty option name ({key!r}).")
        if name in options and options[name] != value:
            raise config_error(
                f"{where} sets `{name}` twice with different values ({options[name]!r} and {value!r}).",
                hint="Keep one spelling: `--name` and `name` are the same option.",
            )
        options[name] = value
    return options


def normalise_datasets(raw: Any, where: str = "multidatabackend.json") -> list[dict[str, Any]]:
    """A list of dataset objects, or the WebUI's `{"datasets": [...]}`."""
    if isinstance(raw, dict) and isinstance(raw.get("datasets"), list):
        raw = raw["datasets"]
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise config_error(f"{where} must hold a JSON list of dataset objects.")
    return [dict(item) for item in raw]


def read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CloudError(f"{path} does not exist.", code="config_missing", hint=JSON_ONLY_HINT) from None
    except OSError as exc:
        raise config_error(f"{path} cannot be read: {exc.strerror}.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise config_error(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}).") from None


def resolve_config_relative(value: str, search_dirs: list[Path]) -> Path | None:
    """SimpleTuner's rule (trainer-contract §3.4): absolute as-is; else each search dir, also with a
    leading `config/` stripped. Returns the first candidate that exists."""
    path = Path(os.path.expanduser(value))
    if path.is_absolute():
        return path if path.exists() else None
    variants = [path]
    if path.parts and path.parts[0] == "config" and len(path.parts) > 1:
        variants.append(Path(*path.parts[1:]))
    for base in search_dirs:
        for variant in variants:
            candidate = base / variant
            if candidate.exists():
                return candidate
    return None


def load_config_file(
    config_path: Path, configs_dir: Path, *, name: str | None, source: str
) -> TrainingConfig:
    """Read one `config.json` and the dataset list it names (or the one beside it)."""
    options = normalise_options(read_json(config_path), where=str(config_path))
    env_dir = config_path.parent
    # configs dir first (WebUI paths are `<name>/multidatabackend.json`), then the environment folder
    # and its parent (an environment copied elsewhere), then the working directory.
    search_dirs = list(dict.fromkeys([configs_dir, env_dir, env_dir.parent, Path.cwd()]))
    config = TrainingConfig(
        options=options,
        datasets=[],
        name=name,
        source=source,
        config_path=config_path,
        base_dir=env_dir,
        # relative dataset folders: the environment folder is what a user expects; SimpleTuner itself
        # resolves them against its working dir, usually the configs dir's parent.
        search_dirs=list(dict.fromkeys([env_dir, configs_dir, configs_dir.parent, Path.cwd()])),
    )
    backend_value = options.get("data_backend_config")
    if isinstance(backend_value, str) and backend_value.strip():
        dataloader = resolve_config_relative(backend_value.strip(), search_dirs)
        if dataloader is None and (env_dir / Path(backend_value.strip()).name).is_file():
            # a renamed or copied environment: `<old name>/multidatabackend.json` sits beside config.json
            dataloader = env_dir / Path(backend_value.strip()).name
        if dataloader is None:
            config.problems.append(f"data_backend_config `{backend_value}` was not found.")
    else:
        beside = env_dir / "multidatabackend.json"
        dataloader = beside if beside.exists() else None
        if dataloader is None:
            config.problems.append("No data_backend_config, and no multidatabackend.json beside config.json.")
    if dataloader is not None:
        config.dataloader_path = dataloader
        try:
            config.datasets = normalise_datasets(read_json(dataloader), where=str(dataloader))
        except CloudError as exc:
            config.problems.append(exc.message)
            config.dataloader_found = False
    else:
        config.dataloader_found = False
    _load_lycoris(config, search_dirs)
    config.problems.extend(describe_problems(config))
    return config


def load_inline(config_json: Any, dataloader_json: Any, lycoris_json: Any = None) -> TrainingConfig:
    """Inline JSON from the API: relative dataset paths resolve against the working directory."""
    options = normalise_options(config_json, where="config_json")
    datasets = normalise_datasets(dataloader_json, where="dataloader_json")
    config = TrainingConfig(options=options, datasets=datasets, search_dirs=[Path.cwd()], base_dir=Path.cwd())
    if lycoris_json is not None:
        if not isinstance(lycoris_json, dict):
            raise config_error("lycoris_json must be a JSON object.")
        config.lycoris = lycoris_json
    elif options.get("lora_type") == "lycoris":
        config.problems.append("lora_type is lycoris but no LyCORIS config was given inline.")
    config.problems.extend(describe_problems(config))
    return config


def _load_lycoris(config: TrainingConfig, search_dirs: list[Path]) -> None:
    if config.options.get("lora_type") != "lycoris":
        return
    value = config.options.get("lycoris_config")
    found = resolve_config_relative(value, search_dirs) if isinstance(value, str) and value else None
    if found is None and config.base_dir is not None and (config.base_dir / "lycoris_config.json").exists():
        found = config.base_dir / "lycoris_config.json"
    if found is None:
        config.problems.append("lora_type is lycoris but the LyCORIS config file was not found.")
        return
    data = read_json(found)
    if not isinstance(data, dict):
        config.problems.append(f"{found} must hold a JSON object.")
        return
    config.lycoris = data


def describe_problems(config: TrainingConfig) -> list[str]:
    """Non-fatal findings shown with a parsed config; the planner refuses what cannot run."""
    problems: list[str] = []
    if not config.options.get("model_family"):
        problems.append("config.json does not set model_family.")
    if config.dataloader_found and not config.datasets:
        problems.append("The dataset list is empty.")
    seen: set[str] = set()
    for index, entry in enumerate(config.datasets):
        dataset_id = entry.get("id")
        if not dataset_id:
            problems.append(f"Dataset #{index + 1} has no id.")
        elif dataset_id in seen:
            problems.append(f"Dataset id `{dataset_id}` is used twice.")
        else:
            seen.add(str(dataset_id))
    return problems
