"""The gate's question: may a look-in happen at this instant under this plan?

Allowed iff the instant lies in an active window (``opens <= t < closes``: half-open, so
touching windows never both claim an instant), or, for the n-th follow-up with
``1 <= n <= max_follow_ups``, in that window extended at its end by
``n * (interval_minutes + window_after_minutes)`` minutes. The instant's night and its
neighbours are searched, since windows sit near night boundaries.

A refusal has a machine ``code`` and a ``detail`` in words; the code is one of
``follow-up-limit`` (n above the plan's maximum; checked first), ``no-consent``,
``paused``, ``skip-night`` (the instant lies in such a skipped window) or
``outside-window`` (in no window at all, including nights before ``effective_from``).

An allowed decision also says until when the look-in may last (``until``): the end of
the authorising window, extended for the n-th follow-up by exactly the allowance above
(``lookin_until``). The device stops a look-in there whatever its ticket says, and the
service caps its tickets by the same rule, so the two can never disagree on the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from schedules.night import Window, night_of, windows_near
from schedules.plan import Plan

__all__ = ["Decision", "authorise", "lookin_until"]


@dataclass(frozen=True)
class Decision:
    """The answer, with a reason the agent reports on refusal."""

    allowed: bool
    code: str  # "ok", or the refusal's machine code (see the module docstring)
    window: Window | None = None
    detail: str = ""  # the refusal in words, for logs and the admins' refusal list
    #: allowed: the latest instant the look-in may last to (``lookin_until`` of the
    #: authorising window, the latest if the instant lies in several); refused: None
    until: datetime | None = None

    @property
    def reason(self) -> str:
        """``code``, or ``"<code>: <detail>"``: the one-line form for logs."""
        return f"{self.code}: {self.detail}" if self.detail else self.code


def follow_up_extension(plan: Plan, follow_ups: int) -> timedelta:
    """How far the n-th follow-up may reach past its window's close."""
    return timedelta(
        minutes=follow_ups * (plan.follow_up.interval_minutes + plan.window_after_minutes))


def lookin_until(plan: Plan, window: Window, follow_ups: int = 0) -> datetime:
    """The hard end of a look-in in ``window``: its close, or for the n-th follow-up
    ``closes + n * (interval_minutes + window_after_minutes)``, as ``authorise`` allows."""
    return window.closes + follow_up_extension(plan, follow_ups)


def authorise(plan: Plan, instant: datetime, follow_ups_so_far: int = 0) -> Decision:
    """Whether a look-in may happen at the aware ``instant``; see the module docstring.

    Raises ``ValueError`` for a naive instant or a negative follow-up count (caller bugs).
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("instant must be timezone-aware")
    if follow_ups_so_far < 0:
        raise ValueError(f"follow_ups_so_far must be >= 0, got {follow_ups_so_far}")
    rule = plan.follow_up
    windows = windows_near(plan, instant)
    if follow_ups_so_far > rule.max_follow_ups:
        hit = next((w for w in windows if w.opens <= instant < w.closes), None)
        return Decision(False, "follow-up-limit", hit,
                        f"follow-up {follow_ups_so_far} requested, "
                        f"the plan allows at most {rule.max_follow_ups}")
    extra = follow_up_extension(plan, follow_ups_so_far)
    hits = [w for w in windows if w.opens <= instant < w.closes + extra]
    allowed = [w for w in hits if w.skip is None]
    if allowed:
        # Each window holding the instant covers it up to its own end without a gap, so
        # the look-in may last to the latest of them (touching windows, follow-ups).
        return Decision(True, "ok", allowed[0], until=max(
            lookin_until(plan, w, follow_ups_so_far) for w in allowed))
    if hits:
        window = hits[0]
        assert window.skip is not None
        code, detail = window.skip.code, window.skip.detail
        if code == "no-consent":
            detail = f"no valid consent for the night of {window.night.isoformat()}"
        return Decision(False, code, window, detail)
    night = night_of(instant, plan.timezone, plan.night_boundary)
    if plan.effective_from is not None and night < plan.effective_from:
        text = (f"the night of {night.isoformat()} is before the plan's effective_from "
                f"{plan.effective_from.isoformat()}")
    else:
        text = f"no check window at {instant.isoformat()}"
    return Decision(False, "outside-window", None, text)
