"""The loop watcher behind ``nattillsyn_event_loop_stall_max_seconds``."""

from __future__ import annotations

import asyncio
import time

from supervision.stalls import TICK, WINDOW, StallWatch


def test_a_held_loop_is_seen_and_forgotten_after_the_window() -> None:
    async def go() -> tuple[float, float, float]:
        watch = StallWatch()
        watch.start()
        await asyncio.sleep(3 * TICK)
        calm = watch.worst()
        time.sleep(0.3)  # noqa: ASYNC251 - the point: something holds the loop
        await asyncio.sleep(2 * TICK)
        held = watch.worst()
        await watch.stop()
        return calm, held, watch.worst(time.monotonic() + WINDOW + 1)
    calm, held, later = asyncio.run(go())
    assert calm < 0.25 <= held < 1.0
    assert later == 0.0


def test_the_worst_within_the_window_is_kept_and_smaller_ones_after_it_too() -> None:
    watch = StallWatch()
    watch.note(0.5, at=100.0)
    watch.note(0.1, at=110.0)
    watch.note(0.2, at=120.0)
    assert watch.worst(now=125.0) == 0.5
    assert watch.worst(now=100.0 + WINDOW + 1) == 0.2  # the 0.5 left the window
    assert watch.worst(now=120.0 + WINDOW + 1) == 0.0
