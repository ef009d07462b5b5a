"""The one canonical JSON form: what is signed (plans, tickets, webhooks) and hashed (audit).

Sorted keys, no whitespace, UTF-8 (not ``\\u`` escapes), no NaN or infinity. Equal values
give identical bytes, so a signature or a hash over them can be checked by anyone who
rebuilds the value. It lives at the bottom layer so every signer and the hash chain use
exactly this function and never a look-alike with other options.
"""

from __future__ import annotations

import json

__all__ = ["canonical"]


def canonical(obj: object) -> bytes:
    """``obj`` (JSON values only) as canonical bytes; ``ValueError``/``TypeError`` otherwise."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")
