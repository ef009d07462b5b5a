"""Every visible string goes through the translation layer, in Swedish and English."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from supervision.checks import Outcome, State
from supervision.i18n import LOCALES, Translator, catalog, pick_locale

WEB = Path(__file__).resolve().parents[2] / "supervision" / "web"
LITERAL = re.compile(r"""\bt\(\s*['"]([a-z][\w.-]*)['"]""")
#: keys built at run time, from values the code knows
DYNAMIC = ([f"outcome.{o.value}" for o in Outcome] + [f"state.{s.value}" for s in State]
           + [f"alert.state.{s}" for s in ("new", "acknowledged", "on-the-way", "arrived",
                                           "resolved")]
           + [f"patrol.do.{s}" for s in ("acknowledged", "on-the-way", "arrived", "resolved")]
           + [f"rounds.{g}" for g in ("overdue", "open", "soon", "done")]
           + [f"role.{r}" for r in ("staff", "patrol", "manager", "admin")]
           + [f"reason.{r}" for r in ("calm", "not-visible", "not-visible-after-follow-up",
                                      "needs-help", "technical-failure", "window-closed",
                                      "camera-offline", "missed", "missed-alert", "paused",
                                      "skip-night", "no-consent")])


def used_keys() -> set[str]:
    keys = set(DYNAMIC)
    for path in [*WEB.glob("templates/*.html"), *WEB.glob("static/*.js")]:
        keys.update(k for k in LITERAL.findall(path.read_text()) if not k.endswith("."))
    return keys


@pytest.mark.parametrize("locale", LOCALES)
def test_every_used_key_is_translated(locale: str) -> None:
    missing = sorted(k for k in used_keys() if k not in catalog(locale))
    assert not missing, f"{locale} lacks {missing}"


def test_both_languages_have_the_same_keys() -> None:
    assert set(catalog("sv")) == set(catalog("en"))


def test_placeholders_match_between_languages() -> None:
    for key, sv in catalog("sv").items():
        en = catalog("en")[key]
        assert set(re.findall(r"{(\w+)}", sv)) == set(re.findall(r"{(\w+)}", en)), key


def test_locale_choice() -> None:
    assert pick_locale("en", "sv-SE", "sv") == "en"
    assert pick_locale(None, "de-DE,en;q=0.5", "sv") == "en"
    assert pick_locale(None, None, "sv") == "sv"
    assert Translator("sv")("error.being_viewed", viewer="Nora") == \
        "Kameran används just nu av Nora."
