"""One VAPID key for all nodes, on both databases: made and recorded at the first start
(0600 file), taken from the database by a node that holds the service's server key, and
a node whose own VAPID file holds another key refuses to start, naming both keys."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from supervision import identity, vapid
from supervision.config import Settings
from supervision.db import Database, migrate


async def test_one_vapid_key_for_all_nodes(database_url: str, tmp_path: Path) -> None:
    db = Database.open(database_url)
    try:
        await migrate(db.engine)
        first = Settings(database_url=database_url, data_dir=tmp_path / "first")
        server = await identity.settle(db, first)
        made = await vapid.settle(db, first, server)  # the very first start: made, recorded
        path = vapid.key_file(first)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert (await vapid.settle(db, first, server)).public_key == made.public_key

        # a second node with the copied server key and no VAPID file: takes the service's
        second = Settings(database_url=database_url, data_dir=tmp_path / "second")
        second.data_dir.mkdir()
        shutil.copy2(first.key_file, second.key_file)
        taken = await vapid.settle(db, second, await identity.settle(db, second))
        assert taken.public_key == made.public_key and taken.der() == made.der()
        assert stat.S_IMODE(vapid.key_file(second).stat().st_mode) == 0o600

        # a node whose VAPID file holds another key: its pushes would reach no phone
        third = Settings(database_url=database_url, data_dir=tmp_path / "third")
        third.data_dir.mkdir()
        shutil.copy2(first.key_file, third.key_file)
        other = vapid.VapidKey.generate()
        other.save(vapid.key_file(third))
        with pytest.raises(vapid.WrongVapidKey) as refused:
            await vapid.settle(db, third, await identity.settle(db, third))
        assert other.public_key in str(refused.value)
        assert made.public_key in str(refused.value) and "Remove" in str(refused.value)
        # the sealed key in the database opens only with the service's server key
        sealed = vapid.seal(made, server)
        assert vapid.unseal(sealed, server).public_key == made.public_key
        assert made.der() not in sealed.encode()
    finally:
        await db.engine.dispose()
