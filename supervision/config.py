"""One typed settings object, from the environment (SUPERVISION_*) and an optional TOML file.

Precedence, highest first: values passed in code, the environment, the TOML file named by
``SUPERVISION_CONFIG``, the defaults here. So an operator can override one value of a
shared file for one node without editing it.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SUPERVISION_", extra="forbid",
                                      allow_inf_nan=False)

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
    port: int = Field(default=8000, ge=1, le=65_535)
    default_locale: Literal["sv", "en"] = "sv"
    session_hours: float = Field(default=12.0, gt=0, le=24 * 7)
    # the night
    #: below ~0.2 s the sweep would do nothing but sweep
    sweep_seconds: float = Field(default=5.0, ge=0.2, le=60)
    planning_minutes: float = Field(default=30.0, ge=0.01, le=24 * 60)
    agent_offline_seconds: float = Field(default=45.0, ge=0, le=86_400)  # 0: no grace after a start
    missed_action: str = Field(default="dispatch", pattern="^(dispatch|alert)$")
    #: per care unit (Recipient.unit): "dispatch" sends the patrol, "alert" only tells them
    missed_action_by_unit: dict[str, Literal["dispatch", "alert"]] = Field(default_factory=dict)
    lookin_answer_timeout: float = Field(default=8.0, gt=0, le=60)
    #: reports: a check first looked in on more than this many minutes after its due time
    #: counts as late (supervision/reports.py)
    report_late_minutes: int = Field(default=5, ge=0, le=120)
    #: reports: a night is rolled up (supervision/rollup.py) this long after its last check
    #: closed even if a check or an alert of it is still unfinished
    report_rollup_grace_hours: float = Field(default=24.0, ge=0, le=24 * 31)
    # dispatch
    escalate_after_minutes: float = Field(default=3.0, gt=0, le=24 * 60)
    # optional webhook to an external alarm receiver (None = off); see supervision/webhook.py
    webhook_url: str | None = None
    webhook_secret: SecretStr = SecretStr("")  # HMAC-SHA256 key; required with webhook_url
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    webhook_max_attempts: int = Field(default=8, ge=1, le=1000)
    #: retry n waits base * 2^(n-1), jittered
    webhook_backoff_base_seconds: float = Field(default=2.0, gt=0, le=3600)
    webhook_backoff_cap_seconds: float = Field(default=300.0, gt=0, le=86_400)
    webhook_poll_seconds: float = Field(default=2.0, ge=0.05, le=300)
    # Web Push to the patrol's phones (supervision/push.py, supervision/vapid.py)
    #: who runs this service, for the push services (the VAPID "sub" claim, RFC 8292)
    vapid_subject: str = Field(default="mailto:drift@nattillsyn.invalid",
                               pattern=r"^(mailto:\S+@\S+|https://\S+)$")
    #: how long a push service keeps a message for a phone that is off (RFC 8030 TTL)
    push_ttl_seconds: int = Field(default=600, ge=0, le=86_400)
    push_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    push_max_attempts: int = Field(default=8, ge=1, le=100)
    push_backoff_base_seconds: float = Field(default=1.0, gt=0, le=3600)
    push_backoff_cap_seconds: float = Field(default=120.0, gt=0, le=86_400)
    #: the outbox is looked at this often, and at once when an alert changes
    push_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    #: an alert nobody acknowledged is pushed again this often (replacing the last one)
    push_repeat_seconds: float = Field(default=60.0, ge=5, le=3600)
    #: the push services whose endpoints (https, or their sub-domains) a phone may
    #: subscribe with: the service POSTs there, and nowhere else
    push_service_hosts: list[str] = Field(default_factory=lambda: [
        "fcm.googleapis.com", "push.services.mozilla.com", "push.apple.com",
        "notify.windows.com"])
    # abuse limits
    login_attempts_per_minute: int = Field(default=10, ge=1, le=10_000)
    ws_max_message_bytes: int = Field(default=64 * 1024, ge=4096, le=16 * 1024 * 1024)
    #: how often the sessions of open patrol sockets are checked against the database, so
    #: a session ended by another process (the CLI) or expired closes its sockets
    socket_recheck_seconds: float = Field(default=2.0, gt=0, le=60)
    #: how often unacknowledged alerts are sent again to every patrol socket (at least once)
    alert_resend_seconds: float = Field(default=10.0, ge=1, le=300)
    #: how often a served node collects everything, the frozen objects too (a pause of
    #: ~1 us an object: 1-1.5 s on a node with 10,000 links; supervision/heap.py)
    gc_full_minutes: float = Field(default=10.0, ge=1, le=24 * 60)
    # several nodes on one PostgreSQL (supervision/leadership.py): how often a node that
    # does not lead tries to (bounds the take-over after the leader dies), and how often
    # the leader checks the connection that holds its lock
    leader_retry_seconds: float = Field(default=2.0, gt=0, le=10)
    leader_check_seconds: float = Field(default=1.0, gt=0, le=10)
    #: how this node is named in logs and in the ``nodes`` table (default: host:port)
    node_name: str | None = Field(default=None, max_length=100)
    #: how often a node says it is alive; a node not heard for ``node_alive_seconds`` is
    #: taken for dead (its camera links count as gone); see supervision/nodes.py
    node_heartbeat_seconds: float = Field(default=2.0, gt=0, le=30)
    node_alive_seconds: float = Field(default=8.0, gt=0, le=120)
    #: camera heartbeats are kept in memory and written in one batch this often
    presence_flush_seconds: float = Field(default=5.0, gt=0, le=60)
    #: connections this node keeps to PostgreSQL, and how many more it may open at a peak
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_max_overflow: int = Field(default=20, ge=0, le=500)
    #: an older schema is migrated at start; off, upgrading is the separate, locked step
    #: `supervision migrate` and `serve` refuses an older schema (an empty one it migrates)
    auto_migrate: bool = False
    enrolment_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    # HTTP limits (supervision/http_guard.py, supervision/http_server.py; docs/architecture.md)
    #: any request body; a plan save or preview is a few hundred KB at most
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    #: the longest pause while a request body arrives
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    #: a request's line and headers must arrive within this, from its first byte or from
    #: the connection's opening (a connection that says nothing is closed after it)
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_header_bytes: int = Field(default=32 * 1024, ge=4096, le=1024 * 1024)
    #: an idle kept-alive connection is closed after this
    keepalive_timeout_seconds: int = Field(default=5, ge=1, le=300)
    #: an answer left unread this long (the send buffer stays full) aborts the connection
    send_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    #: open connections and sockets together (camera links and patrol phones count);
    #: above it a new request gets 503 from the server
    max_connections: int = Field(default=2048, ge=16, le=1_000_000)
    #: addresses or networks of the reverse proxies whose X-Forwarded-For/-Proto are
    #: believed; empty: no forwarded header is believed, the peer's address counts
    trusted_proxies: list[str] = Field(default_factory=list)
    # STUN/TURN for look-ins (supervision/turn.py): pages and cameras get the STUN URLs and,
    # per look-in, TURN credentials minted from the secret coturn shares (use-auth-secret);
    # no long-lived TURN credential is ever handed out
    stun_urls: list[Annotated[str, Field(pattern=r"^stuns?:\S+$")]] = Field(default_factory=list)
    turn_urls: list[Annotated[str, Field(pattern=r"^turns?:\S+$")]] = Field(default_factory=list)
    turn_secret: SecretStr = SecretStr("")  # coturn's static-auth-secret; needed with turn_urls
    #: a look-in's TURN credential lives at most this long, and never past its ticket
    turn_credential_seconds: int = Field(default=600, ge=30, le=86_400)
    #: "relay": browsers and cameras use TURN-relayed paths only (a site's policy may say so)
    ice_transport_policy: Literal["all", "relay"] = "all"
    # audit anchor (supervision/audit.py; docs/architecture.md "Audit"): the chain's head,
    # signed, is appended to a witness outside the database at start, at stop, and every
    # N minutes when it moved; entries after the last checkpoint are not yet anchored
    audit_checkpoint_minutes: float = Field(default=5.0, gt=0, le=24 * 60)
    audit_witness_file: Path | None = None  # None: data_dir / "audit-checkpoints.jsonl"
    #: also send each checkpoint to syslog: "/dev/log" or "host:port" (UDP); None = off
    audit_syslog: str | None = None
    #: retention (supervision/retention.py): look-in records, checks, alerts and audit
    #: entries older than this many days are purged (after a signed purge checkpoint).
    #: No "keep forever": at least a year (reports, complaints), at most ten
    retention_days: int = Field(default=730, ge=365, le=3650)
    # what operators watch (supervision/metrics.py, supervision/logs.py, /healthz, /readyz)
    #: "json": one JSON object a line (for a log shipper), the access log included
    log_format: Literal["text", "json"] = "text"
    #: Prometheus scrapes /metrics with "Authorization: Bearer <token>"; empty: no /metrics
    metrics_token: SecretStr = SecretStr("")

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_environment(cls, data: Any) -> Any:
        """A misspelt SUPERVISION_* variable would otherwise be ignored without a word, and
        the service run on a default the operator meant to change."""
        problems = unknown_environment(os.environ)
        if problems:
            raise ValueError("; ".join(problems))
        return data

    @property
    def cookies_secure(self) -> bool:
        """Cookies are sent over HTTPS only whenever the service is reached over HTTPS."""
        return self.public_url.lower().startswith("https://")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        """Each an IP address or a network; a typo must not silently trust nobody (or all)."""
        return [str(ipaddress.ip_network(item.strip(), strict=False)) for item in value]

    @property
    def webhook_on(self) -> bool:
        """An external alarm receiver is configured: alert changes write outbox rows."""
        return bool(self.webhook_url)

    def missed_action_for(self, unit: str) -> str:
        action = self.missed_action_by_unit.get(unit, self.missed_action)
        return action if action in ("dispatch", "alert") else "dispatch"

    @model_validator(mode="after")
    def _turn_needs_secret(self) -> Settings:
        if self.turn_urls and len(self.turn_secret.get_secret_value()) < 16:
            raise ValueError("turn_urls is set but turn_secret is shorter than 16 characters: "
                             "use coturn's static-auth-secret")
        if self.ice_transport_policy == "relay" and not self.turn_urls:
            raise ValueError("ice_transport_policy is relay but no turn_urls are set")
        return self

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and not self.webhook_secret.get_secret_value():
            raise ValueError("webhook_url is set but webhook_secret is empty: "
                             "an alarm receiver must be able to verify what it gets")
        return self

    @model_validator(mode="after")
    def _alive_outlasts_heartbeat(self) -> Settings:
        if self.node_alive_seconds < 2 * self.node_heartbeat_seconds:
            raise ValueError("node_alive_seconds must be at least twice "
                             "node_heartbeat_seconds, or live nodes would be taken for dead")
        return self

    @property
    def key_file(self) -> Path:
        return self.data_dir / "server.key"

    @property
    def audit_witness(self) -> Path:
        return self.audit_witness_file or self.data_dir / "audit-checkpoints.jsonl"


#: SUPERVISION_* variables that are not settings: the file's name, and the test harness's own
NOT_SETTINGS = frozenset({"SUPERVISION_CONFIG"})
NOT_SETTINGS_PREFIX = "SUPERVISION_TEST_"


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """Each SUPERVISION_* variable that names no setting, with the closest known name."""
    known = {f"SUPERVISION_{name.upper()}" for name in Settings.model_fields}
    problems = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith("SUPERVISION_") or upper in known or upper in NOT_SETTINGS \
                or upper.startswith(NOT_SETTINGS_PREFIX):
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
        problems.append(f"unknown setting {name}" + (f" (did you mean {close[0]}?)" if close
                                                      else ""))
    return problems


#: the exit status of a process refused its configuration (sysexits' EX_CONFIG), so a
#: unit can tell "fix the configuration" from a crash (RestartPreventExitStatus=78)
EXIT_CONFIG = 78


def describe(error: ValidationError) -> list[str]:
    """A refused configuration in an operator's words: the setting, as a variable and as a
    file key, what is wrong, and the value given (never a secret's)."""
    lines = []
    for item in error.errors():
        msg = str(item["msg"]).removeprefix("Value error, ")
        if not item["loc"]:
            lines.append(msg)
            continue
        name = str(item["loc"][0])
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(name, list(Settings.model_fields), n=1)
            lines.append(f"unknown key {name} in the configuration file"
                         + (f" (did you mean {close[0]}?)" if close else ""))
            continue
        shown = "" if "secret" in name or "token" in name or "url" in name \
            else f", got {item['input']!r}"
        lines.append(f"{name} (SUPERVISION_{name.upper()}): {msg}{shown}")
    return lines


@lru_cache
def get_settings() -> Settings:
    return Settings()
