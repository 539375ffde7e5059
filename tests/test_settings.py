"""Settings: one state root that SIMPLETUNER_HOME moves whole; env vars with the SIMPLETUNER_ prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from simpletuner_cloud.settings import DEFAULT_SANDBOX_TOKEN, load_settings


def test_home_moves_the_whole_state_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMPLETUNER_HOME", str(tmp_path / "elsewhere"))
    settings = load_settings()
    root = tmp_path / "elsewhere"
    assert settings.database_path == root / "cloud" / "jobs.db"
    assert settings.admin_token_path == root / "cloud" / "admin_token"
    assert settings.replicate_token_path == root / "cloud" / "replicate_token"
    assert settings.outputs_dir == root / "cloud_outputs"
    assert settings.effective_configs_dir == root / "configs"
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{root / 'cloud' / 'jobs.db'}"


def test_database_url_and_flags_come_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMPLETUNER_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("SIMPLETUNER_REQUIRE_AUTH", "1")
    monkeypatch.setenv("SIMPLETUNER_SANDBOX_STEP_SECONDS", "0.01")
    settings = load_settings()
    assert settings.effective_database_url == "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    assert settings.require_auth is True
    assert settings.sandbox_step_seconds == 0.01


def test_default_home_is_under_the_user_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIMPLETUNER_HOME")
    assert load_settings().home == Path.home() / ".simpletuner"


def test_sandbox_token_is_a_40_character_r8_token_that_says_sandbox() -> None:
    assert len(DEFAULT_SANDBOX_TOKEN) == 40
    assert DEFAULT_SANDBOX_TOKEN.startswith("r8_")
    assert "sandbox" in DEFAULT_SANDBOX_TOKEN
