"""Every visible string goes through the translation layer, in Swedish and English."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from supervision.checks import Outcome, State
from supervision.i18n import LOCALES, PLURAL_FORMS, Translator, catalog, pick_locale

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
                                      "skip-night", "no-consent")]
           + [f"manage.warning.{w}" for w in ("no-camera", "camera-not-enrolled",
                                              "camera-offline")]
           # the agent's video path and why (camera_agent/video_path.py), on the admin page
           + [f"admin.cameras.video.{p}" for p in ("passthrough", "encode")]
           + [f"admin.cameras.video_reason.{r}" for r in (
               "rtsp-h264-unprocessed", "not-rtsp", "masks", "enhance", "passthrough-off",
               "camera-not-h264", "viewer-no-h264")]
           # how a look-in ends: the agent's reasons and the service's own (lookins.py)
           + [f"agents.end.{e}" for e in ("expired", "ended", "revoked", "agent-stopping",
                                          "peer-failed", "peer-closed", "peer-disconnected",
                                          "technical-failure", "bad-offer", "agent-gone",
                                          "unreported", "refused")]
           + ["agents.reason.camera-offline"])


def used_keys() -> set[str]:
    keys = set(DYNAMIC)
    for path in [*WEB.glob("templates/*.html"), *WEB.glob("static/*.js")]:
        keys.update(k for k in LITERAL.findall(path.read_text()) if not k.endswith("."))
    return keys


def plural_families(strings: dict[str, str]) -> set[str]:
    """Keys given per plural form (``<key>.one``, ``<key>.other``), without the form."""
    forms = {form for forms in PLURAL_FORMS.values() for form in forms}
    return {key.rsplit(".", 1)[0] for key in strings if key.rsplit(".", 1)[-1] in forms}


@pytest.mark.parametrize("locale", LOCALES)
def test_every_used_key_is_translated(locale: str) -> None:
    strings = catalog(locale)
    plural = plural_families(strings)
    missing = sorted(k for k in used_keys() if k not in strings and k not in plural)
    assert not missing, f"{locale} lacks {missing}"


@pytest.mark.parametrize("locale", LOCALES)
def test_plural_messages_have_every_form_and_a_count(locale: str) -> None:
    """A message about a number has each of the language's forms, each with {count}, and
    is never also a plain key (which would win over the forms)."""
    strings = catalog(locale)
    for family in plural_families(strings):
        for form in PLURAL_FORMS[locale]:
            text = strings.get(f"{family}.{form}")
            assert text is not None, f"{locale}: {family}.{form} missing"
            assert "{count}" in text, f"{locale}: {family}.{form} does not say the count"
        assert family not in strings, f"{locale}: {family} is both plain and plural"


def test_plurals_are_chosen_by_count() -> None:
    en, sv = Translator("en"), Translator("sv")
    assert en("manage.errors", count=1) == "The plan has 1 problem:"
    assert en("manage.errors", count=2) == "The plan has 2 problems:"
    assert en("manage.errors", count=0) == "The plan has 0 problems:"
    assert sv("manage.form_errors", count=1) == "Formuläret har 1 fel:"
    assert en("validation.string_too_long", count=1) == "must be at most 1 character"
    assert sv("validation.string_too_long", count=64) == "får vara högst 64 tecken"


def test_values_are_put_in_once_and_a_missing_one_fails_nothing() -> None:
    en = Translator("en")
    # a value is never read as a template (a display name with braces stays as it is)
    assert en("error.being_viewed", viewer="{viewer}") == "The camera is being viewed by {viewer}."
    assert en("error.being_viewed") == "The camera is being viewed by {viewer}."


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
