"""The translation layer: every visible string is a key looked up in sv or en."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

CATALOGS = Path(__file__).parent / "i18n"
LOCALES = ("sv", "en")


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
        text = self._strings.get(key) or catalog("en").get(key) or key
        return text.format(**values) if values else text

    def keys(self) -> set[str]:
        return set(self._strings)

    def subset(self, prefix: str) -> dict[str, str]:
        """The strings a page's JavaScript needs, handed over in the page."""
        return {k: v for k, v in self._strings.items() if k.startswith(prefix)}
