"""Settings: the environment overrides the TOML file, which overrides the defaults; an
unknown key in the file is an error, not silently ignored."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from supervision.config import Settings


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "supervision.toml"
    config.write_text('port = 9000\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("SUPERVISION_CONFIG", str(config))
    monkeypatch.setenv("SUPERVISION_PORT", "7000")
    settings = Settings()
    assert settings.port == 7000, "the environment overrides the file"
    assert settings.host == "0.0.0.0", "the file overrides the default"
    assert Settings(port=6000).port == 6000, "values given in code override both"


def test_without_a_file_the_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPERVISION_CONFIG", raising=False)
    monkeypatch.setenv("SUPERVISION_SWEEP_SECONDS", "2.5")
    settings = Settings()
    assert settings.sweep_seconds == 2.5 and settings.port == 8000


def test_an_unknown_key_in_the_file_is_refused(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "supervision.toml"
    config.write_text("prot = 9000\n")
    monkeypatch.setenv("SUPERVISION_CONFIG", str(config))
    with pytest.raises(ValidationError, match="prot"):
        Settings()
