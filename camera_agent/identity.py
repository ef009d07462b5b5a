"""The device's Ed25519 identity: made on the device at enrolment, never leaves it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from camera_agent.protocol import b64e

log = logging.getLogger("camera_agent.identity")


class Identity:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> Identity:
        """A new key in memory only; `save` it once the service has accepted it."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def create(cls, path: Path) -> Identity:
        identity = cls.generate()
        identity.save(path)
        return identity

    def save(self, path: Path) -> None:
        """Write mode 0600 from the first byte, then rename: never readable, never half-written."""
        pem = self._key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file left over
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Identity:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("%s is readable by others (mode %o); it should be 0600", path, mode)
        key = load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 key")
        return cls(key)

    @property
    def public_key_b64(self) -> str:
        return b64e(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign_raw(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def sign(self, message: bytes) -> str:
        return b64e(self.sign_raw(message))
