"""The service's VAPID key (Web Push, RFC 8292): one for all nodes.

A browser's push subscription is bound to the public key the page gave it
(``applicationServerKey``), and the push service refuses messages signed with any other,
so every node must sign with the same key. It is made at the very first start, kept in
``data_dir/vapid.key`` (PEM, 0600) like the server key, and its public half recorded in the
database (``push_identity``) as ``identity`` records the server key's. The private half is
recorded too, sealed (AES-GCM) with a key derived from a signature of the server key, so
the database alone does not give it away and a node that holds the service's server key
(which ``identity.settle`` has checked) writes its own ``vapid.key`` from it: copying
``server.key`` is all a new node needs. A node whose ``vapid.key`` holds another key
refuses to start and says what to do: its pushes would reach no phone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from py_vapid import Vapid02
from sqlalchemy import text

from supervision.config import Settings
from supervision.db import Database
from supervision.identity import WrongServerKey
from supervision.models import PushIdentity
from supervision.tickets import ServerKey

log = logging.getLogger("supervision.vapid")

#: PostgreSQL transaction advisory lock ("VAPD"): nodes starting together agree on one key
VAPID_LOCK = 0x56415044
#: what the server key signs to derive the sealing key (deterministic: Ed25519)
SEAL_LABEL = b"nattillsyn/vapid-seal/v1\n"


class WrongVapidKey(WrongServerKey):
    """This node's VAPID key file is not the service's: it must not start."""


@dataclass(frozen=True)
class VapidKey:
    """A P-256 key pair that signs the VAPID token of every push request."""

    signer: Vapid02

    @property
    def public_key(self) -> str:
        """base64url of the uncompressed point: the page's ``applicationServerKey``."""
        raw = self.signer.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def der(self) -> bytes:
        private: ec.EllipticCurvePrivateKey = self.signer.private_key
        return private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())

    @classmethod
    def generate(cls) -> VapidKey:
        signer = Vapid02()
        signer.generate_keys()
        return cls(signer)

    @classmethod
    def from_der(cls, der: bytes) -> VapidKey:
        return cls._of(serialization.load_der_private_key(der, password=None))

    @classmethod
    def load(cls, path: Path) -> VapidKey:
        return cls._of(serialization.load_pem_private_key(path.read_bytes(), password=None))

    @classmethod
    def _of(cls, private: object) -> VapidKey:
        if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
                private.curve, ec.SECP256R1):
            raise ValueError("a VAPID key is a P-256 key")
        return cls(Vapid02(private_key=private))

    def save(self, path: Path) -> None:
        """PEM, created 0600 (never readable by others, not even for a moment)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = self.signer.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)


def key_file(settings: Settings) -> Path:
    return settings.data_dir / "vapid.key"


def _sealing_key(server_key: ServerKey) -> bytes:
    """A key only the server key's holder can make: Ed25519 signs deterministically, and
    this signature, over its own label, is never shown anywhere."""
    return hashlib.sha256(server_key.sign_checkpoint(SEAL_LABEL).encode()).digest()


def seal(key: VapidKey, server_key: ServerKey) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_sealing_key(server_key)).encrypt(nonce, key.der(), b"vapid")
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(sealed: str, server_key: ServerKey) -> VapidKey:
    raw = base64.urlsafe_b64decode(sealed)
    der = AESGCM(_sealing_key(server_key)).decrypt(raw[:12], raw[12:], b"vapid")
    return VapidKey.from_der(der)


async def settle(database: Database, settings: Settings, server_key: ServerKey) -> VapidKey:
    """The service's VAPID key for this node: recorded (and made, if need be) at the very
    first start; else the recorded one, written to this node's file if it has none.
    Raises ``WrongVapidKey`` when this node's file holds another key."""
    path = key_file(settings)
    async with database.write() as db:
        if db.get_bind().dialect.name == "postgresql":
            await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": VAPID_LOCK})
        recorded = await db.get(PushIdentity, 1)
        if recorded is None:
            key = await asyncio.to_thread(_load_or_create, path)
            db.add(PushIdentity(id=1, public_key=key.public_key,
                                sealed_private=seal(key, server_key),
                                created_at=datetime.now(UTC)))
            log.info("VAPID key %s recorded as the service's (phones' push subscriptions "
                     "are bound to it)", key.public_key)
            return key
        expected, sealed = recorded.public_key, recorded.sealed_private
    if path.exists():
        key = await asyncio.to_thread(VapidKey.load, path)
        if key.public_key != expected:
            raise _refuse(
                f"this node's VAPID key {path} has public key {key.public_key}, but the "
                f"service's is {expected} (recorded in the database at its first start; "
                "every phone's push subscription is bound to it, so this node's pushes "
                f"would reach no phone). Remove {path} (the node then takes the service's "
                "key from the database) or copy vapid.key from a running node (mode "
                "0600), and start again.")
        return key
    try:
        key = unseal(sealed, server_key)
    except (InvalidTag, ValueError) as exc:
        raise _refuse(f"the service's VAPID key {expected} recorded in the database cannot "
                      "be opened with this node's server key: copy vapid.key from a running "
                      f"node to {path} (mode 0600) and start again.") from exc
    await asyncio.to_thread(key.save, path)
    log.info("VAPID key %s taken from the database into %s", expected, path)
    return key


@lru_cache(maxsize=8)
def current(path: Path) -> VapidKey:
    """This node's VAPID key (``settle`` has checked and written it at start)."""
    return VapidKey.load(path)


def _load_or_create(path: Path) -> VapidKey:
    if path.exists():
        return VapidKey.load(path)
    key = VapidKey.generate()
    key.save(path)
    return key


def _refuse(message: str) -> WrongVapidKey:
    log.critical("refusing to start: %s", message)
    return WrongVapidKey(message)
