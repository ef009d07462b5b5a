"""Password rules after NIST SP 800-63B: length over complexity.

At least ``MIN_LENGTH`` characters (spaces and any Unicode allowed, so a passphrase works),
at most ``MAX_LENGTH``; no rules of the kind "a digit and a capital", which make people
write ``Password1!``. Instead what guessers try first is refused: the 20,000 most common
breached passwords (bundled, ``data/common-passwords.txt.gz``, also with trailing digits
and signs stripped, so ``sommar2024!`` is as common as ``sommar``), one character
repeated, runs along the alphabet, digits or a keyboard row, and the person's own
username or name or the service's name. Each refusal is a code (``users.password.<code>``).
"""

from __future__ import annotations

import functools
import gzip
import re
import unicodedata
from pathlib import Path

MIN_LENGTH = 12
MAX_LENGTH = 128
COMMON_FILE = Path(__file__).parent / "data" / "common-passwords.txt.gz"
#: runs people type: the alphabet, digits, keyboard rows (Swedish and US), both ways
_RUNS = ("abcdefghijklmnopqrstuvwxyzåäö", "0123456789", "qwertyuiopåasdfghjklöäzxcvbnm",
         "qwertyuiopasdfghjklzxcvbnm", "qwertzuiop", "azertyuiop", "1qaz2wsx3edc4rfv")
_CONTEXT = ("nattillsyn", "tillsyn", "hemtjanst", "hemtjänst", "password", "losenord",
            "lösenord")
#: Swedish words that are whole passwords often enough (the bundled list is English-heavy)
_LOCAL = frozenset({"sommar", "vinter", "hosten", "hösten", "varen", "våren", "hejsan",
                    "hejhej", "sverige", "stockholm", "sundsvall", "fotboll", "mamma",
                    "pappa", "älskling", "sommaren", "vintern", "jultomten", "kalle"})
_TAIL = re.compile(r"[\d\W_]+$")


@functools.cache
def common() -> frozenset[str]:
    with gzip.open(COMMON_FILE, "rt", encoding="utf-8") as f:
        return frozenset(line.strip() for line in f if line.strip())


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _is_run(text: str) -> bool:
    """One character repeated, or a stretch of one of the runs (either way round)."""
    if len(set(text)) <= 2:
        return True
    return any(text in run * 3 or text in run[::-1] * 3 for run in _RUNS)


def problems(password: str, *, username: str = "", name: str = "") -> list[str]:
    """What is wrong with ``password`` for this person, as codes; empty when it is fine."""
    if len(password) < MIN_LENGTH:
        return ["too-short"]
    if len(password) > MAX_LENGTH:
        return ["too-long"]
    if any(unicodedata.category(c) == "Cc" for c in password):
        return ["control"]
    folded = _fold(password)
    squeezed = re.sub(r"\s+", "", folded)
    base = _TAIL.sub("", squeezed)
    found: list[str] = []
    words = {folded, squeezed, base, _TAIL.sub("", base[:len(base) // 2])}
    if words & common() or words & _LOCAL or _is_run(squeezed) or (base and _is_run(base)):
        found.append("common")
    rest = squeezed
    for part in sorted((_fold(username), *_fold(name).split()), key=len, reverse=True):
        if len(part) >= 3:
            rest = rest.replace(part, "")
    if rest != squeezed and len(_TAIL.sub("", rest)) < 6:  # little but their own name
        found.append("personal")
    if any(word in squeezed for word in _CONTEXT) and len(squeezed) < 20:
        found.append("context")
    return found
