"""One typed settings object, from the environment (SUPERVISION_*) and an optional TOML file.

Precedence, highest first: values passed in code, the environment, the TOML file named by
``SUPERVISION_CONFIG``, the defaults here. So an operator can override one value of a
shared file for one node without editing it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SUPERVISION_", extra="forbid")

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get("SUPERVISION_CONFIG")
        toml = (TomlConfigSettingsSource(settings_cls, toml_file=Path(path)),) if path else ()
        return (init_settings, env_settings, *toml)

    database_url: str = "sqlite+aiosqlite:///var/supervision.db"
    data_dir: Path = Path("var")  # server key lives here (mode 0600)
    public_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    default_locale: str = "sv"
    secure_cookies: bool = False  # True behind HTTPS
    session_hours: float = 12.0
    # the night
    sweep_seconds: float = 5.0
    planning_minutes: float = 30.0
    agent_offline_seconds: float = 45.0
    missed_action: str = Field(default="dispatch", pattern="^(dispatch|alert)$")
    #: per care unit (Recipient.unit): "dispatch" sends the patrol, "alert" only tells them
    missed_action_by_unit: dict[str, str] = Field(default_factory=dict)
    lookin_answer_timeout: float = 8.0
    # dispatch
    escalate_after_minutes: float = 3.0
    # optional webhook to an external alarm receiver (None = off); see supervision/webhook.py
    webhook_url: str | None = None
    webhook_secret: SecretStr = SecretStr("")  # HMAC-SHA256 key; required with webhook_url
    webhook_timeout_seconds: float = 5.0
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_backoff_base_seconds: float = 2.0  # retry n waits base * 2^(n-1), jittered
    webhook_backoff_cap_seconds: float = 300.0
    webhook_poll_seconds: float = 2.0
    # abuse limits
    login_attempts_per_minute: int = 10
    ws_max_message_bytes: int = 64 * 1024
    enrolment_hours: float = 24.0
    ice_servers: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def webhook_on(self) -> bool:
        """An external alarm receiver is configured: alert changes write outbox rows."""
        return bool(self.webhook_url)

    def missed_action_for(self, unit: str) -> str:
        action = self.missed_action_by_unit.get(unit, self.missed_action)
        return action if action in ("dispatch", "alert") else "dispatch"

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and not self.webhook_secret.get_secret_value():
            raise ValueError("webhook_url is set but webhook_secret is empty: "
                             "an alarm receiver must be able to verify what it gets")
        return self

    @property
    def key_file(self) -> Path:
        return self.data_dir / "server.key"


@lru_cache
def get_settings() -> Settings:
    return Settings()
