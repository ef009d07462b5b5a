"""Care-plan domain: plans -> DST-correct check windows of a night, validation, the gate.

Pure and stdlib-only (zoneinfo), no I/O beyond reading the system time-zone database.
"""

from schedules.authorise import Decision, authorise, lookin_until
from schedules.canonical import canonical
from schedules.codec import canonical_json, decode_trusted, parse_plan, plan_to_dict
from schedules.errors import FieldError, PlanError
from schedules.localtime import local_to_utc
from schedules.night import Window, expand, night_bounds, night_of
from schedules.plan import (
    DEFAULT_TZ,
    CheckTime,
    Consent,
    FollowUpRule,
    Pause,
    Plan,
    SkipNight,
    validate_consent_active,
)
from schedules.reason import Reason
from schedules.schema import plan_json_schema

__all__ = [
    "DEFAULT_TZ",
    "CheckTime",
    "Consent",
    "Decision",
    "FieldError",
    "FollowUpRule",
    "Pause",
    "Plan",
    "PlanError",
    "Reason",
    "SkipNight",
    "Window",
    "authorise",
    "canonical",
    "canonical_json",
    "decode_trusted",
    "expand",
    "local_to_utc",
    "lookin_until",
    "night_bounds",
    "night_of",
    "parse_plan",
    "plan_json_schema",
    "plan_to_dict",
    "validate_consent_active",
]
