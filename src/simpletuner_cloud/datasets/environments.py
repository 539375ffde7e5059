"""Named environments in the configs folder (`<configs_dir>/<name>/config.json`), and turning a user's
reference (environment name, folder or config.json path) into a parsed `TrainingConfig`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simpletuner_cloud.datasets.configs import (
    ENVIRONMENT_NAME,
    JSON_ONLY_HINT,
    TrainingConfig,
    load_config_file,
)
from simpletuner_cloud.errors import CloudError


@dataclass
class EnvironmentSummary:
    name: str
    path: Path
    model_family: str | None = None
    model_type: str | None = None
    description: str | None = None
    datasets: int = 0
    problems: list[str] = field(default_factory=list)


def list_environments(configs_dir: Path) -> list[EnvironmentSummary]:
    """Every subfolder holding a `config.json`, sorted by name. A broken one is listed with its problem."""
    if not configs_dir.is_dir():
        return []
    summaries = []
    for folder in sorted(configs_dir.iterdir(), key=lambda p: p.name):
        if not folder.is_dir() or not ENVIRONMENT_NAME.match(folder.name):
            continue
        if not (folder / "config.json").is_file():
            continue
        summary = EnvironmentSummary(name=folder.name, path=folder)
        metadata = _read_metadata(folder / ".metadata.json")
        summary.description = metadata.get("description")
        try:
            config = load_environment(folder.name, configs_dir)
        except CloudError as exc:
            summary.problems.append(exc.message)
        else:
            summary.model_family = config.model_family
            summary.model_type = str(config.options.get("model_type", "lora"))
            summary.datasets = len(config.datasets)
            summary.problems = list(config.problems)
        summaries.append(summary)
    return summaries


def load_environment(name: str, configs_dir: Path) -> TrainingConfig:
    if not ENVIRONMENT_NAME.match(name) or name in (".", ".."):
        raise CloudError(
            f"`{name}` is not an environment name.",
            code="config_invalid",
            hint="Environment names use letters, digits, `.`, `_` and `-`.",
        )
    config_path = configs_dir / name / "config.json"
    if not config_path.is_file():
        raise missing_config(name, configs_dir)
    return load_config_file(config_path, configs_dir, name=name, source="environment")


def load_path(path: Path, configs_dir: Path) -> TrainingConfig:
    """A folder holding `config.json`, or the `config.json` itself."""
    path = path.expanduser().resolve()
    config_path = path / "config.json" if path.is_dir() else path
    if not config_path.is_file():
        raise CloudError(
            f"No config.json at {path}.",
            code="config_missing",
            hint="Give a folder holding config.json, "
            "the config.json file itself, or the name of an environment in the configs folder.",
        )
    return load_config_file(config_path, configs_dir, name=config_path.parent.name, source="path")


def load_training_config(reference: str, configs_dir: Path) -> TrainingConfig:
    """An environment name wins when it exists; otherwise the reference is a path."""
    reference = reference.strip()
    if ENVIRONMENT_NAME.match(reference) and (configs_dir / reference / "config.json").is_file():
        return load_environment(reference, configs_dir)
    candidate = Path(reference).expanduser()
    if candidate.exists():
        return load_path(candidate, configs_dir)
    raise missing_config(reference, configs_dir)


def missing_config(reference: str, configs_dir: Path) -> CloudError:
    return CloudError(
        f"No environment or config named `{reference}` (looked in {configs_dir} and as a path).",
        code="config_missing",
        hint="Run `simpletuner examples install` for the example, set SIMPLETUNER_CONFIGS_DIR, or give a "
        f"path to a folder holding config.json. {JSON_ONLY_HINT}",
    )


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
