"""The translation layer: every visible string is a key looked up in sv or en.

Values are put in by name (``{viewer}``), once, and only those given: a missing value
leaves its placeholder rather than failing, and a value is never read as a template. A
message that depends on a number has one key per plural form, ``<key>.one`` and
``<key>.other``, chosen by the ``count`` value (Swedish and English have these two forms;
static/common.js chooses the same way with ``Intl.PluralRules``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

CATALOGS = Path(__file__).parent / "i18n"
LOCALES = ("sv", "en")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _one_other(count: object) -> str:
    return "one" if count == 1 and not isinstance(count, bool) else "other"


#: each locale's plural forms (CLDR) and the rule that picks one for a count
PLURAL_FORMS: dict[str, tuple[str, ...]] = {"sv": ("one", "other"), "en": ("one", "other")}
PLURAL_RULES: dict[str, Callable[[object], str]] = {"sv": _one_other, "en": _one_other}


def interpolate(text: str, values: dict[str, object]) -> str:
    """``{name}`` replaced by its value where one is given, in one pass."""
    if not values:
        return text
    return PLACEHOLDER.sub(
        lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)


@cache
def catalog(locale: str) -> dict[str, str]:
    """All of a locale's files (one per area of the product) merged; a key may live in one only."""
    merged: dict[str, str] = {}
    for path in sorted((CATALOGS / locale).glob("*.json")):
        part: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        clash = merged.keys() & part.keys()
        if clash:
            raise ValueError(f"{path}: keys defined twice: {sorted(clash)}")
        merged.update(part)
    return merged


def pick_locale(requested: str | None, accept_language: str | None, default: str) -> str:
    if requested in LOCALES:
        return requested
    for part in (accept_language or "").split(","):
        lang = part.split(";")[0].strip().lower()[:2]
        if lang in LOCALES:
            return lang
    return default if default in LOCALES else "sv"


class Translator:
    def __init__(self, locale: str) -> None:
        self.locale = locale
        self._strings = catalog(locale)

    def __call__(self, key: str, **values: object) -> str:
        text = self._lookup(key)
        if text is None and "count" in values:
            form = PLURAL_RULES.get(self.locale, _one_other)(values["count"])
            text = self._lookup(f"{key}.{form}") or self._lookup(f"{key}.other")
        return interpolate(text if text is not None else key, values)

    def _lookup(self, key: str) -> str | None:
        return self._strings.get(key) or catalog("en").get(key)

    def keys(self) -> set[str]:
        return set(self._strings)

    def subset(self, prefix: str) -> dict[str, str]:
        """The strings a page's JavaScript needs, handed over in the page."""
        return {k: v for k, v in self._strings.items() if k.startswith(prefix)}
