"""Refusals that reach a person: an HTTP status and a translation key, never a stack trace."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ServiceError(Exception):
    def __init__(self, status: int, code: str, **details: Any) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.details = details


# --- how refusals look in the OpenAPI schema ---------------------------------------------

class ErrorDetail(BaseModel):
    """A ServiceError: a translation key and its message in the person's language."""

    model_config = ConfigDict(extra="allow")
    code: str = Field(description="translation key, e.g. error.outside_window")
    message: str


class ErrorReply(BaseModel):
    """Every refusal but a validation error (422) has this shape; `detail` is a plain
    sentence for refusals by the framework and the guards (401, 403), else an ErrorDetail."""

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
