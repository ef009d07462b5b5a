"""Refusals that reach a person: an HTTP status and a translation key, never a stack trace."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ServiceError(Exception):
    """A refusal: ``code`` is the message's translation key, ``details`` its values.

    ``words`` names details that are codes themselves, each with the translation key of
    its words (a camera's refusal ``busy`` -> ``agents.reason.busy``), so the message says
    "the camera is busy" in the person's language while the JSON keeps the code.
    """

    def __init__(self, status: int, code: str, *, words: Mapping[str, str] | None = None,
                 **details: Any) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.words = dict(words or {})
        self.details = details


class BadInput(Exception):
    """Input that parsed but breaks a rule: 422 in the framework's validation shape,
    ``{"detail": [{"loc": [...], "msg": ..., "type": ..., ...}]}``, every problem at once."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(i.get("msg")) for i in items))
        self.items = items


# --- how refusals look in the OpenAPI schema ---------------------------------------------

class ErrorDetail(BaseModel):
    """A ServiceError: a translation key and its message in the person's language."""

    model_config = ConfigDict(extra="allow")
    code: str = Field(description="translation key, e.g. error.outside_window")
    message: str


class ErrorReply(BaseModel):
    """Every refusal but a validation error (422) has this shape; `detail` is a plain
    sentence only where the framework itself refuses (e.g. a malformed request), else an
    ErrorDetail."""

    detail: ErrorDetail | str


WHAT = {
    400: "The request body could not be read (e.g. not UTF-8)",
    401: "Not signed in",
    403: "Not allowed: another role, or the CSRF token is missing or wrong",
    404: "No such thing",
    409: "Not now: the state of the thing does not allow it",
    503: "The camera is not connected",
    504: "The camera did not answer in time",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the refusals it can answer with, documented."""
    return {status: {"model": ErrorReply,
                     "description": WHAT.get(status) or HTTPStatus(status).phrase}
            for status in statuses}
