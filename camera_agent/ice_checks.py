"""A fix to aioice's ICE checks (RFC 8445 section 7.3.1.4), applied when the agent starts.

When a connectivity check arrives on a pair whose own check is still in progress, the
agent must cancel that transaction and check the pair again at once. aioice leaves it to
its retransmission, 500 ms later. Through TURN that is what every look-in waits: the
camera's first check reaches the browser's relay before the browser, which has not yet
seen the answer, has permitted the camera's address on it, so coturn drops it; the
browser's own check then succeeds at once, but the camera's side of the pair completes
only with the retransmission. With the re-check, a relayed look-in connects as fast as a
direct one (bench/ttff.py, turn mode).
"""

from __future__ import annotations

import weakref
from typing import Any

from aioice.ice import CandidatePair, Connection

_original = Connection.check_incoming
_rechecked: weakref.WeakSet[CandidatePair] = weakref.WeakSet()


def _check_incoming(self: Connection, message: Any, addr: tuple[str, int],
                    protocol: Any) -> None:
    _original(self, message, addr, protocol)
    for pair in self._check_list:
        if (pair.protocol is protocol and pair.remote_addr == addr
                and pair.state is CandidatePair.State.IN_PROGRESS and pair.task is not None
                and pair not in _rechecked):
            _rechecked.add(pair)  # once: a lost answer to the re-check is retransmitted
            pair.task.cancel()
            pair.task = None
            self.check_state(pair, CandidatePair.State.WAITING)
            self.check_start_task(pair)


def install() -> None:
    """Idempotent: the patched method replaces aioice's once."""
    Connection.check_incoming = _check_incoming  # type: ignore[method-assign]
