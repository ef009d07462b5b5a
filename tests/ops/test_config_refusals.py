"""Configuration fails fast and clearly: a misspelt SUPERVISION_* variable or a number out of
range stops `supervision serve` before anything starts, naming the variable, with exit
status 78 (EX_CONFIG). Before this, SUPERVISION_SWEEP_SECONDS=-1 started a service that
spun at 83 % CPU, never opened its port and ignored SIGTERM."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from pydantic import ValidationError

from supervision.config import EXIT_CONFIG, Settings, describe, unknown_environment
from tests.harness import BIN, free_port


def serve(tmp_path: os.PathLike[str], **env: str) -> tuple[subprocess.CompletedProcess[str],
                                                           float]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISION_")
            or k.startswith("SUPERVISION_TEST_")}
    base.update(SUPERVISION_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/t.db",
                SUPERVISION_DATA_DIR=str(tmp_path), SUPERVISION_PORT=str(free_port()), **env)
    began = time.monotonic()
    done = subprocess.run([str(BIN / "supervision"), "serve"], env=base, capture_output=True,
                          text=True, timeout=20)
    return done, time.monotonic() - began


def test_a_negative_sweep_is_refused_at_once(tmp_path: os.PathLike[str]) -> None:
    done, took = serve(tmp_path, SUPERVISION_SWEEP_SECONDS="-1")
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert "SUPERVISION_SWEEP_SECONDS" in done.stderr and "0.2" in done.stderr, done.stderr
    assert "-1" in done.stderr, "the value given is shown"
    assert "Traceback" not in done.stderr, "a sentence, not a stack"
    assert took < 10


def test_a_misspelt_variable_is_refused_with_the_closest_name(
        tmp_path: os.PathLike[str]) -> None:
    done, _ = serve(tmp_path, SUPERVISION_SWEEP_SECOND="2")
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert "unknown setting SUPERVISION_SWEEP_SECOND " in done.stderr
    assert "did you mean SUPERVISION_SWEEP_SECONDS?" in done.stderr


def test_the_file_and_the_harness_variables_are_not_settings() -> None:
    assert unknown_environment({"SUPERVISION_CONFIG": "x", "SUPERVISION_TEST_POSTGRES_URL": "y",
                                "SUPERVISION_PORT": "1", "PATH": "/bin"}) == []
    assert unknown_environment({"supervision_prot": "1"}) == [
        "unknown setting supervision_prot (did you mean SUPERVISION_PORT?)"]


@pytest.mark.parametrize(("name", "value"), [
    ("sweep_seconds", "0"), ("sweep_seconds", "nan"), ("sweep_seconds", "inf"),
    ("port", "0"), ("port", "70000"), ("webhook_poll_seconds", "-1"),
    ("escalate_after_minutes", "0"), ("max_connections", "1e12"),
    ("missed_action_by_unit", '{"north": "nap"}'), ("default_locale", "de"),
])
def test_numbers_and_choices_have_ranges(monkeypatch: pytest.MonkeyPatch, name: str,
                                         value: str) -> None:
    monkeypatch.delenv("SUPERVISION_CONFIG", raising=False)
    monkeypatch.setenv(f"SUPERVISION_{name.upper()}", value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    lines = describe(refused.value)
    assert any(line.startswith(f"{name} (SUPERVISION_{name.upper()}):") for line in lines), lines


def test_secrets_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERVISION_TURN_URLS", '["turn:127.0.0.1:3478"]')
    monkeypatch.setenv("SUPERVISION_TURN_SECRET", "short-secret")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "short-secret" not in " ".join(describe(refused.value))


def test_an_unknown_file_key_is_named_as_one(tmp_path: os.PathLike[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = f"{tmp_path}/supervision.toml"
    with open(config, "w") as file:
        file.write("prot = 9000\n")
    monkeypatch.setenv("SUPERVISION_CONFIG", config)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert describe(refused.value) == [
        "unknown key prot in the configuration file (did you mean port?)"]
