"""Schemathesis against the running service: the JSON API does what its OpenAPI schema says.

Every operation of the schema the service serves at /openapi.json, asked by nobody and by
each role (session cookie + X-CSRF-Token, as the pages send them), with data that fits the
schema and data that does not. Checks: no 5xx; every status code is one the operation
documents; every body matches the documented schema and media type; data that breaks the
schema is refused with a 4xx. Bounded and deterministic: a fixed number of examples per
operation and mode, Hypothesis derandomized.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from supervision.app import create_app
from tests.access.routes import application_routes, guard_roles
from tests.harness import Service, make_service
from tests.people import Person

ANON = "anonymous"
LOGINS = {"staff": "natt", "patrol": "patrull", "manager": "chef", "admin": "admin"}
IDENTITIES = (ANON, *LOGINS)
#: examples per operation and mode, for an identity its guard lets in / turns away (every
#: answer of a turned-away one is the guard's 401/403, so a few show it is documented)
EXAMPLES = {True: {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 15},
            False: {GenerationMode.POSITIVE: 4, GenerationMode.NEGATIVE: 4}}
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance,
          content_type_conformance, negative_data_rejection]


def schema_operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation in the application's schema (collected statically;
    the fixture checks the served schema has exactly these)."""
    paths: dict[str, dict[str, Any]] = create_app().openapi()["paths"]
    return sorted((method.upper(), path) for path, ops in paths.items() for method in ops)


OPERATIONS = schema_operations()
#: the roles each operation's guard lets in (None: public); used only for the budget
GUARDS = {(e.method, e.path): guard_roles(e.route) for e in application_routes()}


@dataclass
class Fuzz:
    svc: Service
    schema: Any
    http: requests.Session
    auth: dict[str, tuple[dict[str, str], dict[str, str]]]  # who -> (cookies, headers)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    svc = make_service(Path(tmp_path_factory.mktemp("fuzz")))
    svc.start()
    try:
        auth: dict[str, tuple[dict[str, str], dict[str, str]]] = {ANON: ({}, {})}
        for role, username in LOGINS.items():
            person = Person(svc.url, username)
            auth[role] = (dict(person.http.cookies), {"X-CSRF-Token": person.csrf})
        # the schema is served to signed-in people only
        schema = schemathesis.openapi.from_url(svc.url + "/openapi.json",
                                               cookies=auth["staff"][0])
        served = sorted((op.ok().method.upper(), op.ok().path)
                        for op in schema.get_all_operations())
        assert served == OPERATIONS, "the served schema is the application's"
        with requests.Session() as http:
            yield Fuzz(svc, schema, http, auth)
    finally:
        svc.stop()


def run_mode(fuzz: Fuzz, operation: Any, who: str, mode: GenerationMode,
             examples: int) -> None:
    cookies, headers = fuzz.auth[who]

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck),
              phases=(Phase.explicit, Phase.generate, Phase.shrink))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=fuzz.svc.url, session=fuzz.http, headers=dict(headers),
                             cookies=dict(cookies), timeout=20)
        case.validate_response(response, checks=CHECKS)

    try:
        check()
    except Unsatisfiable:
        # nothing in this operation can be made invalid (no parameters, no body)
        assert mode is GenerationMode.NEGATIVE, "positive data could not be generated"


@pytest.mark.parametrize("who", IDENTITIES)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_keeps_its_schema(fuzz: Fuzz, method: str, path: str, who: str) -> None:
    operation = fuzz.schema[path][method]
    roles = GUARDS[(method, path)]
    budget = EXAMPLES[roles is None or who in roles]
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        run_mode(fuzz, operation, who, mode, budget[mode])
