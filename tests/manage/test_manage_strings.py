"""The care manager's pages in both languages: every key they build at run time exists,
and every field of a plan has a label to show next to its error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import schedules
from supervision.i18n import CATALOGS, LOCALES, catalog
from supervision.preview import Skip
from supervision.recipients import ConsentStatus


def plan_paths(schema: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> set[str]:
    """Every field path of the plan's JSON form, list indices left out ("pauses.reason")."""
    out: set[str] = set()
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        out.add(path)
        for option in [prop, *prop.get("anyOf", []), prop.get("items", {})]:
            ref = option.get("$ref") or option.get("items", {}).get("$ref")
            if ref:
                out |= plan_paths(defs[ref.rsplit("/", 1)[1]], defs, f"{path}.")
            elif "properties" in option:  # an object described in place
                out |= plan_paths(option, defs, f"{path}.")
    return out


def literal_values(model: Any, field: str) -> list[str]:
    return list(model.model_fields[field].annotation.__args__)


def dynamic_keys() -> set[str]:
    schema = schedules.plan_json_schema()
    fields = plan_paths(schema, schema.get("$defs", {}))
    assert {"check_times.at", "pauses.reason", "follow_up.max_follow_ups"} <= fields
    assert {p.split(".")[0] for p in fields} == set(
        schedules.plan_to_dict(schedules.Plan(check_times=())))
    lists = {"check_times", "pauses", "skip_nights"}
    return ({f"manage.field.{p}" for p in fields} | {f"manage.field.{p}.item" for p in lists}
            | {f"manage.consent.{s}" for s in literal_values(ConsentStatus, "state")}
            | {f"manage.skip.{c}" for c in literal_values(Skip, "code")}
            | {f"manage.camera.{s}" for s in ("online", "offline", "not_enrolled", "none")}
            | {f"manage.weekday.{d}" for d in range(7)}
            | {"manage.field.plan", "manage.error.no_recipient", "manage.error.stale",
               "manage.error.body"})


@pytest.mark.parametrize("locale", LOCALES)
def test_run_time_keys_are_translated(locale: str) -> None:
    missing = sorted(k for k in dynamic_keys() if k not in catalog(locale))
    assert not missing, f"{locale} lacks {missing}"


def test_manage_strings_live_in_manage_json_only() -> None:
    files = {loc: json.loads((CATALOGS / loc / "manage.json").read_text()) for loc in LOCALES}
    assert set(files["sv"]) == set(files["en"])
    assert all(k.startswith("manage.") for k in files["sv"])
    for locale in LOCALES:
        for other in Path(CATALOGS / locale).glob("*.json"):
            if other.name != "manage.json":
                assert not [k for k in json.loads(other.read_text()) if k.startswith("manage.")]
