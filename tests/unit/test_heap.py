"""The collector's tuning (supervision/heap.py): long-lived objects leave the full
collections, and garbage among them is still freed by the periodic full one."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from supervision import heap


class Node:
    """A reference cycle, like a closed link's objects: freed only by the collector."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def tuned() -> Iterator[None]:
    yield
    while heap._users:  # whatever a failed test left behind
        heap.uninstall()
    assert gc.get_freeze_count() == 0


async def _turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def test_install_freezes_the_start_and_the_survivors_of_each_full_collection(
        tuned: None) -> None:
    async def go() -> None:
        heap.install()
        at_start = gc.get_freeze_count()
        assert at_start > 1000  # the interpreter, pytest, the service's modules
        kept = [Node() for _ in range(5000)]  # come to live long: links, say
        gc.collect(2)  # a full collection CPython chose to run
        await _turn()  # the freeze is deferred to the loop
        assert gc.get_freeze_count() > at_start + 4000
        walked = {id(o) for o in gc.get_objects(2)}  # what the next full collection walks
        assert not any(id(k) in walked for k in kept)
        heap.uninstall()
        assert gc.get_freeze_count() == 0
    asyncio.run(go())


def test_garbage_among_frozen_objects_waits_for_the_full_collection(tuned: None) -> None:
    async def go() -> None:
        node = Node()
        alive = weakref.ref(node)
        heap.install()  # the cycle is frozen with everything else
        del node
        gc.collect()
        assert alive() is not None  # a frozen cycle: no ordinary collection frees it
        took = heap.full()
        assert alive() is None
        assert took > 0
        assert gc.get_freeze_count() > 1000  # and what lives is frozen again
    asyncio.run(go())


def test_full_does_nothing_where_the_process_keeps_its_own_collector(tuned: None) -> None:
    node = Node()
    alive = weakref.ref(node)
    del node
    assert heap.full() == 0.0
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert alive() is None


def test_the_last_service_in_a_process_gives_the_collector_back(tuned: None) -> None:
    async def go() -> None:
        heap.install()
        heap.install()  # two services in one process (in-process tests)
        heap.uninstall()
        assert gc.get_freeze_count() > 0 and heap._after in gc.callbacks
        heap.uninstall()
        assert gc.get_freeze_count() == 0 and heap._after not in gc.callbacks
        heap.uninstall()  # once too often: nothing
    asyncio.run(go())


def test_a_collection_after_the_loop_closed_is_harmless(tuned: None) -> None:
    async def go() -> None:
        heap.install()
    asyncio.run(go())  # the loop is closed now, the callback still installed
    gc.collect(2)  # no error from the callback
    heap.uninstall()
