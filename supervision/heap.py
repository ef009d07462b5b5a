"""The cycle collector's pauses, kept off the alert path.

CPython's full (generation 2) collection walks every container object that has survived
two younger ones: the whole application (modules, the ORM's mappers, templates, schemas)
and everything held all night (camera links, sockets, sessions). With a few thousand
links that is a pause of 100-300 ms, and under load one comes every few seconds; during it
no alert moves. Measured: it was the tail of both alert benchmarks (bench/nodes.py,
bench/push_latency.py).

So (``gc.freeze``, which CPython provides for this):

- when the service is ready: collect once and freeze: what the start made is left out of
  every later collection;
- after every full collection (which CPython still runs when it wants to): freeze what
  survived it, on the service's loop; the next full collection walks only what has lived
  long since;
- every ``gc_full_minutes`` (``full``, a per-node job): unfreeze, collect everything,
  freeze again. A frozen object is never collected, so a cycle that became garbage after
  it was frozen (a link that closed, say) waits for this; one pause of the old length
  every so many minutes instead of every few seconds.

Reference cycles are still collected, objects freed by their reference counts (most) are
freed at once as always; what changes is when the long-lived ones are walked.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

log = logging.getLogger("supervision.heap")

_loop: asyncio.AbstractEventLoop | None = None
_users = 0  # services in this process that asked for it (in-process tests run several)
#: seconds the last ``full`` took (``/metrics``)
last_pause = 0.0


def install() -> None:
    """Collect and freeze now, and freeze after every full collection from now on."""
    global _loop, _users
    _users += 1
    _loop = asyncio.get_running_loop()
    if _users == 1:
        gc.callbacks.append(_after)
    gc.collect()
    gc.freeze()
    log.info("collector: %d objects of the start frozen", gc.get_freeze_count())


def uninstall() -> None:
    """Back to CPython's own ways once the last service in this process stops."""
    global _loop, _users
    if _users == 0:
        return
    _users -= 1
    if _users:
        return
    _loop = None
    if _after in gc.callbacks:
        gc.callbacks.remove(_after)
    gc.unfreeze()


def full() -> float:
    """Collect everything, the frozen too, then freeze what lives; the pause in seconds
    (none where the process's collector is its own: not installed)."""
    global last_pause
    if not _users:
        return 0.0
    began = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    took = time.perf_counter() - began
    last_pause = took
    # one line every gc_full_minutes: the pause it cost is worth seeing next to the latencies
    log.info("full collection: %.0f ms, %d objects frozen", took * 1000, gc.get_freeze_count())
    return took


def _freeze() -> None:
    if _users:  # not when the service stopped meanwhile
        gc.freeze()


def _after(phase: str, info: dict[str, Any]) -> None:
    """A gc callback: after a full collection, freeze its survivors. Deferred to the loop
    (a collection can happen in any thread, and inside the collector is no place to move
    its lists)."""
    if phase != "stop" or info.get("generation") != 2:
        return
    loop = _loop
    if loop is None or loop.is_closed():
        return
    try:
        loop.call_soon_threadsafe(_freeze)
    except RuntimeError:  # the loop closed meanwhile
        pass
