"""One server identity for all nodes.

The agents pin the service's public key at enrolment and verify every ticket and plan
with it, so every node must sign with the same private key. The first node to start on a
database records its key's public half there (``server_identity``); every later start,
on any node, must hold the matching key file or refuse to start: a node with another key
would sign tickets no agent accepts, and a node without a key file must not make one.
A database migrated from before this table records the key of the first node to start.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from supervision.config import Settings
from supervision.db import Database
from supervision.models import ServerIdentity
from supervision.tickets import ServerKey

log = logging.getLogger("supervision.identity")

#: PostgreSQL transaction advisory lock ("IDNT"): nodes starting together on an empty
#: database agree on one key (the first records it, the others then compare with it)
IDENTITY_LOCK = 0x49444E54


class WrongServerKey(RuntimeError):
    """This node's key file is missing or is not the service's key: it must not start."""


async def settle(database: Database, settings: Settings) -> ServerKey:
    """The service's key from this node's key file, after checking it against the one
    recorded in the database (recording it, and making the file if need be, at the very
    first start). Raises ``WrongServerKey`` with what to do."""
    path = settings.key_file
    async with database.write() as db:
        if db.get_bind().dialect.name == "postgresql":
            await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": IDENTITY_LOCK})
        recorded = await db.get(ServerIdentity, 1)
        if recorded is None:
            key = await asyncio.to_thread(_load_or_create, path)
            db.add(ServerIdentity(id=1, public_key=key.public_key_b64,
                                  created_at=datetime.now(UTC)))
            log.info("server key %s recorded as the service's (agents pin it); further "
                     "nodes need a copy of %s", key.public_key_b64, path)
            return key
        expected = recorded.public_key
    if not path.exists():
        raise _refuse(f"this node has no server key file ({path}), and the service's key "
                      f"is {expected} (recorded in the database at its first start; the "
                      "agents pin it). A new key would sign tickets and plans no agent "
                      f"accepts, so none is made. Copy server.key from a running node to "
                      f"{path} (mode 0600) and start again.")
    key = await asyncio.to_thread(ServerKey.load_or_create, path)
    if key.public_key_b64 != expected:
        raise _refuse(f"this node's server key {path} has public key {key.public_key_b64}, "
                      f"but the service's key is {expected} (recorded in the database at "
                      "its first start; the agents pin it). Replace this node's key file "
                      f"with server.key copied from a running node (mode 0600) and start "
                      "again; do not change the recorded key unless every agent is "
                      "enrolled again.")
    return key


def _load_or_create(path: Path) -> ServerKey:
    path.parent.mkdir(parents=True, exist_ok=True)
    return ServerKey.load_or_create(path)


def _refuse(message: str) -> WrongServerKey:
    log.critical("refusing to start: %s", message)
    return WrongServerKey(message)
