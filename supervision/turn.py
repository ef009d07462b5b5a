"""STUN/TURN for look-ins: short-lived TURN credentials, minted per look-in.

coturn with ``use-auth-secret`` (the "TURN REST API" scheme) accepts any username of the
form ``<expiry unix time>:<anything>`` whose password is base64(HMAC-SHA1(secret,
username)), until that expiry. So the service, which shares the secret with coturn, mints
a credential for each look-in (one for the viewer's browser, one for the camera), valid no
longer than the look-in's ticket, and the secret stays on the service and coturn: no page
and no camera holds a long-lived TURN credential. The username's second part names who it
is for (the visit for a camera; check, viewer and a nonce for a browser, whose credential
is minted before the visit exists), so coturn's log says whose relay it was.

The browser asks (``lookins.ice``) before making its offer, since its offer must already
carry its relayed candidates; the camera gets its servers in the ``lookin`` message
(``lookin_fields``). With ``ice_transport_policy = "relay"`` both sides are told to use
relayed candidates only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from supervision.config import Settings


class IceServer(BaseModel):
    """One entry of RTCConfiguration.iceServers (W3C names, as browsers and aiortc take it)."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class IceConfig(BaseModel):
    """What a peer of one look-in needs for its RTCPeerConnection."""

    ice_servers: list[IceServer]
    ice_transport_policy: Literal["all", "relay"] = Field(
        description="relay: use TURN-relayed candidates only (iceTransportPolicy)")
    expires_at: datetime | None = Field(
        default=None, description="the TURN credential is refused from then on "
        "(absent: no TURN server is configured)")


def credential(secret: str, username: str) -> str:
    """The password coturn derives for ``username``: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def username(expires_at: datetime, subject: str) -> str:
    """``<expiry unix time>:<subject>``; coturn refuses it from that second on."""
    if ":" in subject:
        raise ValueError("a TURN username's subject must not contain ':'")
    return f"{math.floor(expires_at.timestamp())}:{subject}"


def expiry(settings: Settings, now: datetime, limit: datetime) -> datetime:
    """The credential's end: the configured lifetime, but never past ``limit`` (the
    ticket's end), in whole seconds (coturn compares whole seconds)."""
    end = min(now + timedelta(seconds=settings.turn_credential_seconds), limit)
    return datetime.fromtimestamp(math.floor(end.timestamp()), UTC)


def ice_config(settings: Settings, subject: str, now: datetime, limit: datetime) -> IceConfig:
    """STUN servers as configured, TURN servers with a credential for ``subject``."""
    servers = [IceServer(urls=list(settings.stun_urls))] if settings.stun_urls else []
    expires_at = None
    if settings.turn_urls:
        expires_at = expiry(settings, now, limit)
        name = username(expires_at, subject)
        servers.append(IceServer(
            urls=list(settings.turn_urls), username=name,
            credential=credential(settings.turn_secret.get_secret_value(), name)))
    return IceConfig(ice_servers=servers, ice_transport_policy=settings.ice_transport_policy,
                     expires_at=expires_at)


#: a test credential for the installer's check lives no longer than this
PROBE_SECONDS = 60


def probe_fields(settings: Settings, camera_id: str, now: datetime) -> dict[str, Any]:
    """The ``ice_servers`` answer to a camera's ``ice_probe`` (``camera-agent doctor``): the
    servers a look-in would get, with a TURN credential named for the probe and ending
    within a minute, so an installer can test the relay without a look-in."""
    subject = "probe-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in camera_id)
    config = ice_config(settings, subject, now, now + timedelta(seconds=PROBE_SECONDS))
    return {"ice_servers": [s.model_dump(exclude_none=True) for s in config.ice_servers],
            "expires_at": config.expires_at.timestamp() if config.expires_at else None}


def lookin_fields(settings: Settings, session: str, now: datetime,
                  not_after: datetime) -> dict[str, Any]:
    """The camera's part, as fields of the ``lookin`` message: its own credential, named
    for the visit and ending with the ticket."""
    config = ice_config(settings, session, now, not_after)
    return {"ice_servers": [s.model_dump(exclude_none=True) for s in config.ice_servers],
            "ice_transport_policy": config.ice_transport_policy}
