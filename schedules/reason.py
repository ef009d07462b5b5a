"""A reason as a value: a stable machine code and the words that go with it.

Codes are compared, translated and stored in a column of their own; the detail is free
text (a care manager's "hospital", a camera's error) and is never parsed.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Reason"]


@dataclass(frozen=True)
class Reason:
    code: str
    detail: str = ""

    def __str__(self) -> str:
        """One line for logs: ``code`` or ``code: detail``."""
        return f"{self.code}: {self.detail}" if self.detail else self.code
