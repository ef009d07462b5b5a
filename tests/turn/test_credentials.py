"""TURN credentials as coturn checks them (``use-auth-secret``), against a real coturn:
what the service mints is accepted until its expiry; an expired, forged or re-dated
credential is refused. And the settings refuse a TURN set-up that could not work."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from supervision import turn
from supervision.config import Settings
from tests.conftest import need
from tests.turn.coturn import Coturn, allocate, have_coturn, running_coturn

SECRET = "nattillsyn-test-secret-0123456789"
NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def settings(**values: object) -> Settings:
    base: dict[str, object] = {"turn_urls": ["turn:127.0.0.1:3478?transport=udp"],
                               "turn_secret": SECRET, "stun_urls": ["stun:127.0.0.1:3478"]}
    return Settings(**{**base, **values})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    need(have_coturn(), "coturn's turnserver not found (apt-get install coturn)")
    with running_coturn(tmp_path_factory.mktemp("coturn"), SECRET) as server:
        yield server


def test_the_password_is_coturns_hmac_of_the_username() -> None:
    # computed outside Python: printf '1700000000:visit-abc' |
    #   openssl dgst -sha1 -hmac nattillsyn-test-secret -binary | base64
    assert turn.credential("nattillsyn-test-secret", "1700000000:visit-abc") == \
        "minw37JJNvfErFsbVgwl83nRDUI="
    assert turn.username(datetime.fromtimestamp(1700000000.9, UTC), "visit-abc") == \
        "1700000000:visit-abc"
    with pytest.raises(ValueError):
        turn.username(NOW, "a:b")  # the subject must not move coturn's expiry field


def test_a_credential_ends_with_its_ticket_or_its_lifetime_whichever_is_first() -> None:
    config = settings(turn_credential_seconds=120)
    soon = NOW + timedelta(seconds=45.7)
    ice = turn.ice_config(config, "abc", NOW, soon)
    assert ice.expires_at == NOW + timedelta(seconds=45)  # never past the ticket
    stun_entry, turn_entry = ice.ice_servers
    assert stun_entry.urls == ["stun:127.0.0.1:3478"] and stun_entry.username is None
    assert turn_entry.username == f"{int((NOW + timedelta(seconds=45)).timestamp())}:abc"
    assert turn_entry.credential == turn.credential(SECRET, turn_entry.username)
    later = turn.ice_config(config, "abc", NOW, NOW + timedelta(hours=1))
    assert later.expires_at == NOW + timedelta(seconds=120)
    fields = turn.lookin_fields(config, "sess1", NOW, soon)
    assert fields["ice_transport_policy"] == "all"
    assert fields["ice_servers"][1]["username"].endswith(":sess1")
    assert "username" not in fields["ice_servers"][0]  # STUN: no credential at all
    assert turn.ice_config(Settings(), "abc", NOW, soon).ice_servers == []


@pytest.mark.parametrize("values", [
    {"turn_secret": ""},                      # TURN without the shared secret
    {"turn_secret": "short"},                 # a guessable secret
    {"turn_urls": [], "ice_transport_policy": "relay"},  # relay-only with nothing to relay
    {"turn_urls": ["http://turn.example"]},   # not a TURN URL
    {"stun_urls": ["turn:127.0.0.1"]},        # not a STUN URL
    {"turn_credential_seconds": 5},           # out of range
    {"turn_credential_seconds": 10**6},
    {"ice_transport_policy": "host"},
])
def test_settings_refuse_a_turn_set_up_that_cannot_work(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        settings(**values)


def test_coturn_accepts_what_the_service_mints_until_it_expires(coturn: Coturn) -> None:
    now = datetime.now(UTC)
    ice = turn.ice_config(settings(), "visit-ok", now, now + timedelta(seconds=60))
    server = ice.ice_servers[1]
    assert server.username and server.credential
    relayed = allocate(coturn, server.username, server.credential)
    assert isinstance(relayed, tuple) and relayed[0] == "127.0.0.1", relayed


def test_coturn_refuses_expired_forged_and_redated_credentials(coturn: Coturn) -> None:
    now = datetime.now(UTC)
    expired = turn.username(now - timedelta(seconds=2), "visit-old")
    assert allocate(coturn, expired, turn.credential(SECRET, expired)) == 401
    valid = turn.username(now + timedelta(seconds=60), "visit-x")
    forged = turn.credential("another-secret-of-some-length", valid)
    assert allocate(coturn, valid, forged) == 401
    # the expiry moved a day on, keeping the password of the original username
    short = turn.username(now + timedelta(seconds=30), "visit-y")
    redated = turn.username(now + timedelta(days=1), "visit-y")
    assert allocate(coturn, redated, turn.credential(SECRET, short)) == 401
    assert allocate(coturn, "visit-y", turn.credential(SECRET, "visit-y")) == 401  # no expiry
    assert isinstance(allocate(coturn, short, turn.credential(SECRET, short)), tuple)
