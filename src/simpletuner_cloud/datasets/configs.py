"""Read SimpleTuner configs: `config.json` + `multidatabackend.json` from a named environment in the
configs folder, an explicit path, or inline JSON. Pure reading; what to upload is decided in `plan.py`."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from simpletuner_cloud.errors import CloudError

ENVIRONMENT_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
# Real configs nest 3 or 4 levels; far deeper input can only be an accident or an attack, and answers
# that show a config could not even be serialised (pydantic stops at a few hundred levels).
MAX_CONFIG_DEPTH = 32
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


def path_is(path: Path, kind: Literal["file", "dir", "any"] = "any") -> bool:
    """`exists()`/`is_file()`/`is_dir()` where a path the system refuses to look up (a name longer
    than the file system allows raises ENAMETOOLONG on Python 3.11) simply is not there."""
    try:
        return path.is_file() if kind == "file" else path.is_dir() if kind == "dir" else path.exists()
    except (OSError, ValueError):
        return False


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
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise config_error(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}).") from None
    except RecursionError:
        raise too_deep_error(str(path)) from None
    if too_deep(data):
        raise too_deep_error(str(path))
    return data


def too_deep_error(where: str) -> CloudError:
    return config_error(f"{where} nests lists or objects more than {MAX_CONFIG_DEPTH} levels deep.")


def too_deep(value: Any, limit: int = MAX_CONFIG_DEPTH) -> bool:
    """Whether JSON data nests lists/objects more than `limit` levels (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def resolve_config_relative(
    value: str, search_dirs: list[Path], inside: list[Path] | None = None
) -> Path | None:
    """SimpleTuner's rule (trainer-contract §3.4): absolute as-is; else each search dir, also with a
    leading `config/` stripped. Returns the first candidate that exists. With `inside`, only a readable
    file whose real path (links followed) lies in one of those folders counts: anything else is
    answered as missing, so an answer never tells whether a file outside them exists."""
    path = Path(os.path.expanduser(value))
    variants = [path]
    if not path.is_absolute() and path.parts and path.parts[0] == "config" and len(path.parts) > 1:
        variants.append(Path(*path.parts[1:]))
    candidates = [path] if path.is_absolute() else [base / v for base in search_dirs for v in variants]
    for candidate in candidates:
        if inside is None:
            if path_is(candidate):
                return candidate
        elif _readable_file_inside(candidate, inside):
            return candidate
    return None


def _readable_file_inside(candidate: Path, folders: list[Path]) -> bool:
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    if not any(real.is_relative_to(folder.resolve()) for folder in folders):
        return False  # checked before touching the file: outside is never opened
    return real.is_file() and os.access(real, os.R_OK)


def load_config_file(
    config_path: Path, configs_dir: Path, *, name: str | None, source: str
) -> TrainingConfig:
    """Read one `config.json` and the dataset list it names (or the one beside it)."""
    options = normalise_options(read_json(config_path), where=str(config_path))
    env_dir = config_path.parent
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
    # configs dir first (WebUI paths are `<name>/multidatabackend.json`), then the environment folder
    # and its parent (an environment copied elsewhere). These are also the only folders the API reads
    # and quotes from: never the server's working dir or the rest of the disk.
    readable = list(dict.fromkeys([configs_dir, env_dir, env_dir.parent]))
    if isinstance(backend_value, str) and backend_value.strip():
        dataloader = resolve_config_relative(backend_value.strip(), readable, inside=readable)
        beside = env_dir / Path(backend_value.strip()).name
        if dataloader is None and _readable_file_inside(beside, [env_dir]):
            # a renamed or copied environment: `<old name>/multidatabackend.json` sits beside config.json
            dataloader = beside
        if dataloader is None:
            config.problems.append(
                f"data_backend_config `{backend_value}` was not found (it is read from the configs folder "
                "or the environment's folder)."
            )
    else:
        beside = env_dir / "multidatabackend.json"
        dataloader = beside if path_is(beside) else None
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
    _load_lycoris(config, configs_dir)
    config.problems.extend(describe_problems(config))
    return config


def load_inline(config_json: Any, dataloader_json: Any, lycoris_json: Any = None) -> TrainingConfig:
    """Inline JSON from the API: relative dataset paths resolve against the working directory."""
    for where, value in (("config_json", config_json), ("dataloader_json", dataloader_json),
                         ("lycoris_json", lycoris_json)):  # fmt: skip
        if too_deep(value):
            raise too_deep_error(where)
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


def _load_lycoris(config: TrainingConfig, configs_dir: Path) -> None:
    """The LyCORIS JSON: `lycoris_config` resolved against the environment's folder (also the WebUI's
    `config/<name>/...` form), else `lycoris_config.json` beside config.json. Only a file inside the
    environment's folder is read; missing, unreadable and outside get the same problem."""
    if config.options.get("lora_type") != "lycoris" or config.base_dir is None:
        return
    env_dir = config.base_dir
    value = config.options.get("lycoris_config")
    named = value.strip() if isinstance(value, str) else ""
    found = resolve_config_relative(named, [env_dir, configs_dir], inside=[env_dir]) if named else None
    beside = env_dir / "lycoris_config.json"
    if found is None and _readable_file_inside(beside, [env_dir]):
        found = beside
    wanted = f"lycoris_config `{named}`" if named else "lycoris_config.json beside config.json"
    if found is None:
        config.problems.append(
            f"lora_type is lycoris but the LyCORIS config file was not found: {wanted} must be a readable "
            f"file inside the environment's folder ({env_dir})."
        )
        return
    try:
        data = read_json(found)
    except CloudError as exc:
        config.problems.append(exc.message)
        return
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
        elif not isinstance(dataset_id, str):
            problems.append(f"Dataset #{index + 1} has an id that is not text (a {json_type(dataset_id)}).")
        elif dataset_id in seen:
            problems.append(f"Dataset id `{dataset_id}` is used twice.")
        else:
            seen.add(str(dataset_id))
    return problems


def json_type(value: Any) -> str:
    """How a JSON value's kind is named in messages."""
    if isinstance(value, bool):
        return "boolean"
    names = {dict: "JSON object", list: "list", str: "string", int: "number", float: "number"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), "null")
