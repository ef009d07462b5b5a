"""A Web Push service played on loopback, and devices subscribed the way browsers do.

Each ``Device`` has its own P-256 key pair and 16-byte auth secret (what a browser makes
in ``pushManager.subscribe``) and an endpoint on the played service. The service
(``PushService``) receives the real HTTP requests, checks every one as a push service
does (RFC 8292: the VAPID token's ES256 signature with the key in ``k``, its audience,
expiry and subject; RFC 8030: TTL, Urgency, Topic), decrypts the body with the device's
keys (RFC 8291, aes128gcm, with the ``http-ece`` package, not the sender's code), and
records what arrived: one alert message, or several in one push (``{"v": 2, "items":
[...]}``), which then must name no Topic (it would let a later push about one of them
replace all of them at the push service) and fit the 4096 bytes a push service must take.
It can answer a device with a given status (410: gone; 500: fail), and hold a device's
answers until released (``hold``), as a slow push service does.
The checks here are written from the RFCs, not from pywebpush or py_vapid.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import schedules
from supervision.db import make_engine, make_sessionmaker
from supervision.demo import demo_plan, record_consents
from supervision.models import Plan, Recipient
from tests.harness import Service, free_port, make_service


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Device:
    """A browser's push subscription: its keys stay here, the service gets the public part."""

    name: str
    base: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: secrets.token_bytes(16))

    @property
    def endpoint(self) -> str:
        return f"{self.base}/push/{self.token}"

    def subscription(self) -> dict[str, Any]:
        """``PushSubscription.toJSON()``, as the page sends it."""
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "device": self.name,
                "keys": {"p256dh": b64u(public), "auth": b64u(self.auth)}}


@dataclass
class Push:
    at: float  # time.time() when it arrived
    device: str
    headers: dict[str, str]
    claims: dict[str, Any]
    vapid_key: str
    message: dict[str, Any]
    answered: int
    size: int = 0  # bytes of the encrypted body

    @property
    def items(self) -> list[dict[str, Any]]:
        """The alert messages it carries: itself, or those of a coalesced push."""
        return list(self.message["items"]) if self.message.get("v") == 2 else [self.message]


class PushService:
    """The played push service: ``got`` holds every decrypted push, in arrival order."""

    def __init__(self) -> None:
        self.port = free_port()
        self.devices: dict[str, Device] = {}
        self.answers: dict[str, list[int]] = {}  # device name -> statuses to answer first
        self.got: list[Push] = []
        self.errors: list[str] = []
        self.on_push: Callable[[Push], None] | None = None
        self.hold: dict[str, threading.Event] = {}  # device name -> answer once this is set
        self.holding: set[str] = set()  # devices with a push waiting for its hold
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def device(self, name: str) -> Device:
        made = Device(name, self.base)
        self.devices[made.token] = made
        return made

    def start(self) -> PushService:
        played = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real push services

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = played._take(self.path, {k.lower(): v for k, v in self.headers.items()},
                                      body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.request_queue_size = 512
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _take(self, path: str, headers: dict[str, str], body: bytes) -> int:
        token = path.rsplit("/", 1)[-1]
        device = self.devices.get(token)
        if device is None:
            return 404
        try:
            claims, key = verify_vapid(headers.get("authorization", ""), self.base)
            assert headers.get("content-encoding") == "aes128gcm", headers
            assert int(headers["ttl"]) > 0, "a message for a phone that is off must wait"
            assert headers.get("urgency") in ("high", "normal"), headers
            assert len(headers.get("topic", "")) <= 32, headers
            assert len(body) <= 4096, f"{len(body)} bytes: more than a push service must take"
            plain = http_ece.decrypt(body, private_key=device.key, auth_secret=device.auth,
                                     version="aes128gcm")
            message = json.loads(plain)
            check_message(message, headers.get("topic"))
        except Exception as exc:  # recorded: every test asserts there were none
            with self._lock:
                self.errors.append(f"{device.name}: {type(exc).__name__}: {exc}")
            return 400
        held = self.hold.get(device.name)
        if held is not None:
            with self._lock:
                self.holding.add(device.name)
            held.wait(10)
        with self._lock:
            queued = self.answers.get(device.name) or []
            status = queued.pop(0) if queued else 201
            push = Push(time.time(), device.name, headers, claims, key, message, status,
                        len(body))
            self.got.append(push)
        if self.on_push is not None:
            self.on_push(push)
        return status

    def pushes(self, device: str | None = None, *, delivered: bool = True) -> list[Push]:
        with self._lock:
            return [p for p in self.got if (device is None or p.device == device)
                    and (not delivered or p.answered < 300)]

    def wait(self, ok: Callable[[list[Push]], bool], timeout: float = 20) -> list[Push]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.pushes(delivered=False)
            if ok(got):
                return got
            time.sleep(0.05)
        raise TimeoutError(f"not seen in time; got {[(p.device, p.message) for p in self.got]}"
                           f"; errors {self.errors}")


def check_message(message: dict[str, Any], topic: str | None) -> None:
    """One alert message (v 1), or several (v 2) each a v 1 message; a Topic only on a push
    about one alert, and then that alert's."""
    items = message["items"] if message.get("v") == 2 else [message]
    if message.get("v") == 2:
        assert isinstance(items, list) and len(items) >= 2, message
        assert set(message) == {"v", "items"}, message
    for item in items:
        assert item["v"] == 1 and isinstance(item["alert"], int), item
        assert isinstance(item["delivery"], int) and item["event"] in (
            "raised", "escalated", "repeat", "settled"), item
    alerts = {item["alert"] for item in items}
    if topic is not None:
        assert len(alerts) == 1 and topic == f"alert-{alerts.pop()}", (topic, message)


def verify_vapid(authorization: str, audience: str) -> tuple[dict[str, Any], str]:
    """RFC 8292: ``vapid t=<JWT>, k=<P-256 public key>``; the JWT is ES256 over the key,
    for this push service's origin, expiring within 24 hours, with a contact."""
    scheme, _, params = authorization.partition(" ")
    assert scheme.lower() == "vapid", authorization
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    token, key = parts["t"], parts["k"]
    head_b64, claims_b64, sig_b64 = token.split(".")
    header = json.loads(unb64u(head_b64))
    assert header["alg"] == "ES256", header
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(key))
    sig = unb64u(sig_b64)
    assert len(sig) == 64, "ES256 signatures are r || s"
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        public.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise AssertionError("the VAPID signature does not verify") from exc
    claims: dict[str, Any] = json.loads(unb64u(claims_b64))
    assert claims["aud"] == audience, claims
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600, claims
    assert str(claims["sub"]).startswith(("mailto:", "https://")), claims
    return claims, key


#: extra recipients, each with a check open from the start (the demo has three)
EXTRA = [("Ragnar Öberg", "Kyrkgatan 3, Sundsvall", "Portkod 5150"),
         ("Sigrid Falk", "Parkvägen 9, Sundsvall", "Nyckel hos grannen, kod 7788"),
         ("Tore Nyman", "Hamngatan 21, Sundsvall", "Portkod 2468"),
         ("Elsa Dahl", "Skolgatan 4, Sundsvall", "Portkod 1357")]


async def _seed_extra(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        now = datetime.now(UTC)
        async with make_sessionmaker(engine)() as db, db.begin():
            for name, address, access in EXTRA:
                recipient = Recipient(name=name, address=address, access_info=access,
                                      unit="Extra")
                db.add(recipient)
                await db.flush()
                db.add(Plan(recipient_id=recipient.id, version=1, created_at=now,
                            created_by="test", data=demo_plan(now, [2], schedules.DEFAULT_TZ)))
                await record_consents(db, [recipient], now)  # look-ins need it on record
    finally:
        await engine.dispose()


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, PushService]]:
    """One service (demo data and ``EXTRA``, no cameras: each open check can end in a
    technical failure, which sends the patrol) and one played push service for the whole
    package. Repeats every 5 s and escalation after 9 s, so the tests see both; the
    patrol sockets' re-send every 2 s."""
    played = PushService().start()
    svc = make_service(tmp_path_factory.mktemp("push") / "svc",
                       push_service_hosts='["127.0.0.1"]', push_repeat_seconds="5",
                       escalate_after_minutes="0.15", push_backoff_base_seconds="0.3",
                       push_backoff_cap_seconds="1", push_poll_seconds="1",
                       alert_resend_seconds="2")
    asyncio.run(_seed_extra(svc.env["SUPERVISION_DATABASE_URL"]))
    svc.start()
    try:
        yield svc, played
    finally:
        svc.stop()
        played.stop()
