"""How long this node's event loop was held: what is behind every late alert.

Every alert's news, relayed look-in and heartbeat waits while the loop runs something
else (a long job's Python work, a full cycle collection: supervision/heap.py). Found only
with instrumentation before; now a watcher sleeps ``TICK`` again and again and notes by how
much it woke late, and ``/metrics`` shows the worst of the last ``WINDOW`` seconds, so an
operator sees a stall before a patrol notices a late alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

#: how often the watcher wakes; a stall shorter than this may be seen only in part
TICK = 0.1
#: the worst stall of this many seconds is reported
WINDOW = 60.0


class StallWatch:
    """The worst lateness of this loop over the last ``WINDOW`` seconds."""

    def __init__(self) -> None:
        # (when, how late), the lateness falling from front to back: the front is the
        # worst within the window, and a later, worse one drops the ones before it
        self._worst: deque[tuple[float, float]] = deque()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stall-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def note(self, late: float, at: float | None = None) -> None:
        """The loop woke ``late`` seconds after it was due, at ``at`` (monotonic)."""
        at = time.monotonic() if at is None else at
        while self._worst and self._worst[-1][1] <= late:
            self._worst.pop()
        self._worst.append((at, late))
        self._trim(at)

    def worst(self, now: float | None = None) -> float:
        """Seconds: the longest the loop was held within the last ``WINDOW`` seconds."""
        self._trim(time.monotonic() if now is None else now)
        return self._worst[0][1] if self._worst else 0.0

    def _trim(self, now: float) -> None:
        while self._worst and self._worst[0][0] < now - WINDOW:
            self._worst.popleft()

    async def _run(self) -> None:
        while True:
            began = time.monotonic()
            await asyncio.sleep(TICK)
            ended = time.monotonic()
            self.note(max(0.0, ended - began - TICK), ended)
