"""Named environments in the configs folder (`<configs_dir>/<name>/config.json`), and turning a user's
reference (environment name, folder or config.json path) into a parsed `TrainingConfig`."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simpletuner_cloud.datasets.configs import (
    ENVIRONMENT_NAME,
    JSON_ONLY_HINT,
    TrainingConfig,
    load_config_file,
    path_is,
)
from simpletuner_cloud.errors import CloudError

log = logging.getLogger(__name__)
MAX_NAME_LENGTH = 255  # a folder name: longer cannot exist on any common file system


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
    """Every subfolder holding a `config.json`, sorted by name. A broken one is listed with its problem,
    whatever went wrong reading it: it never hides the others."""
    if not path_is(configs_dir, "dir"):
        return []
    summaries = []
    for folder in sorted(configs_dir.iterdir(), key=lambda p: p.name):
        if not path_is(folder, "dir") or not ENVIRONMENT_NAME.match(folder.name):
            continue
        if not path_is(folder / "config.json", "file"):
            continue
        summaries.append(_summary(folder, configs_dir))
    return summaries


def _summary(folder: Path, configs_dir: Path) -> EnvironmentSummary:
    summary = EnvironmentSummary(name=folder.name, path=folder)
    description = _read_metadata(folder / ".metadata.json").get("description")
    summary.description = description if isinstance(description, str) else None
    try:
        config = load_environment(folder.name, configs_dir)
    except CloudError as exc:
        summary.problems.append(exc.message)
        return summary
    except Exception:  # one unreadable environment must not turn the whole list into a 500
        log.exception("could not read the environment %s", folder)
        summary.problems.append("This environment could not be read (see the server log).")
        return summary
    summary.model_family = config.model_family
    summary.model_type = str(config.options.get("model_type", "lora"))
    summary.datasets = len(config.datasets)
    summary.problems = list(config.problems)
    return summary


def load_environment(name: str, configs_dir: Path) -> TrainingConfig:
    if len(name) > MAX_NAME_LENGTH or not ENVIRONMENT_NAME.match(name) or name in (".", ".."):
        shown = name if len(name) <= 80 else f"{name[:80]}..."
        raise CloudError(
            f"`{shown}` is not an environment name.",
            code="config_invalid",
            hint="Environment names use letters, digits, `.`, `_` and `-`.",
        )
    config_path = configs_dir / name / "config.json"
    if not path_is(config_path, "file"):
        raise missing_config(name, configs_dir)
    return load_config_file(config_path, configs_dir, name=name, source="environment")


def load_path(path: Path, configs_dir: Path) -> TrainingConfig:
    """A folder holding `config.json`, or the `config.json` itself."""
    path = path.expanduser().resolve()
    config_path = path / "config.json" if path_is(path, "dir") else path
    if not path_is(config_path, "file"):
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
    if ENVIRONMENT_NAME.match(reference) and path_is(configs_dir / reference / "config.json", "file"):
        return load_environment(reference, configs_dir)
    candidate = Path(reference).expanduser()
    if path_is(candidate):
        return load_path(candidate, configs_dir)
    raise missing_config(reference, configs_dir)


def missing_config(reference: str, configs_dir: Path) -> CloudError:
    shown = reference if len(reference) <= 200 else f"{reference[:200]}..."
    return CloudError(
        f"No environment or config named `{shown}` (looked in {configs_dir} and as a path).",
        code="config_missing",
        hint="Run `simpletuner examples install` for the example, set SIMPLETUNER_CONFIGS_DIR, or give a "
        f"path to a folder holding config.json. {JSON_ONLY_HINT}",
    )


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}
