"""Schemathesis against the running service: the JSON API does what its OpenAPI schema says.

Every operation of the schema the service serves at /openapi.json, asked by nobody and by
each role (session cookie + X-CSRF-Token, as the pages send them), with data that fits the
schema and data that does not. Checks: no 5xx; every status code is one the operation
documents; every body matches the documented schema and media type; data that breaks the
schema is refused with a 4xx. Bounded and deterministic: a fixed number of examples per
operation and mode, Hypothesis derandomized.

Some operations would take the fuzz run's own ground away mid-run: a new role, disabling or
a password reset ends the fuzzing identities' sessions (every later answer a 401, which is
documented, so the run would pass while testing nothing), and archiving revokes the demo
world's cameras. Those operations are not excluded: an id that names one of the fuzzing
identities or a demo recipient is swapped for one of the fuzz run's own throwaway users or
recipients (made for it in the fixture), so they change real rows and the rest of the run
keeps its sessions and its world. An id that does not validate is left as generated, so
negative cases stay negative. (``POST /api/me/password`` needs the current password, which
a generated body does not guess.)
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
#: operations that run the password hash (Argon2, slow on purpose, ~0.15 s a request) on
#: every valid body: fewer examples, since each costs as much as dozens of others
HASHING = {("POST", "/api/me/password"), ("POST", "/api/users")}
HASHING_EXAMPLES = {GenerationMode.POSITIVE: 8, GenerationMode.NEGATIVE: 6}
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


#: operations that must not reach the fuzzing identities or the demo world: the path
#: parameter that names the row, and which kind of throwaway row takes its place
SHIELDED = {("PATCH", "/api/users/{user_id}"): ("user_id", "users"),
            ("POST", "/api/users/{user_id}/password-link"): ("user_id", "users"),
            ("POST", "/api/recipients/{rid}/archive"): ("rid", "recipients")}


@dataclass
class Fuzz:
    svc: Service
    schema: Any
    http: requests.Session
    auth: dict[str, tuple[dict[str, str], dict[str, str]]]  # who -> (cookies, headers)
    protected: dict[str, set[int]]  # kind -> ids the run must not change
    throwaway: dict[str, list[int]]  # kind -> ids made for the run to change

    def shield(self, method: str, path: str, case: schemathesis.Case) -> None:
        """Swap a protected id in the case's path for a throwaway one."""
        if (method, path) not in SHIELDED or not case.path_parameters:
            return
        name, kind = SHIELDED[(method, path)]
        value = case.path_parameters.get(name)
        if type(value) is int and value in self.protected[kind]:
            spare = self.throwaway[kind]
            case.path_parameters[name] = spare[value % len(spare)]


def throwaway_rows(admin: Person, manager: Person) -> tuple[dict[str, set[int]],
                                                             dict[str, list[int]]]:
    """The ids the run must leave alone, and two users and two recipients of its own."""
    users = admin.get("/api/users").json()
    recipients = manager.get("/api/recipients").json()
    protected = {"users": {u["id"] for u in users},
                 "recipients": {r["id"] for r in recipients}}
    spare: dict[str, list[int]] = {"users": [], "recipients": []}
    for n in range(2):
        made = admin.post("/api/users", {"username": f"fuzz-spare-{n}",
                                         "display_name": f"Fuzz {n}", "role": "staff"})
        assert made.status_code == 201, made.text
        spare["users"].append(next(u["id"] for u in admin.get("/api/users").json()
                                   if u["username"] == f"fuzz-spare-{n}"))
        made = manager.post("/api/recipients", {"name": f"Fuzz {n}", "address": "Gatan 1"})
        assert made.status_code == 201, made.text
        spare["recipients"].append(made.json()["id"])
    return protected, spare


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    svc = make_service(Path(tmp_path_factory.mktemp("fuzz")))
    svc.start()
    try:
        auth: dict[str, tuple[dict[str, str], dict[str, str]]] = {ANON: ({}, {})}
        persons = {role: Person(svc.url, username) for role, username in LOGINS.items()}
        for role, person in persons.items():
            auth[role] = (dict(person.http.cookies), {"X-CSRF-Token": person.csrf})
        protected, spare = throwaway_rows(persons["admin"], persons["manager"])
        # the schema is served to signed-in people only
        schema = schemathesis.openapi.from_url(svc.url + "/openapi.json",
                                               cookies=auth["staff"][0])
        served = sorted((op.ok().method.upper(), op.ok().path)
                        for op in schema.get_all_operations())
        assert served == OPERATIONS, "the served schema is the application's"
        with requests.Session() as http:
            yield Fuzz(svc, schema, http, auth, protected, spare)
    finally:
        svc.stop()


def run_mode(fuzz: Fuzz, operation: Any, who: str, mode: GenerationMode,
             examples: int, method: str, path: str) -> None:
    cookies, headers = fuzz.auth[who]

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck),
              phases=(Phase.explicit, Phase.generate, Phase.shrink))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        fuzz.shield(method, path, case)
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
    if (method, path) in HASHING and (roles is None or who in roles):
        budget = HASHING_EXAMPLES
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        run_mode(fuzz, operation, who, mode, budget[mode], method, path)


def test_fuzzing_identities_kept_their_sessions(fuzz: Fuzz) -> None:
    """Runs after the operations (file order): nothing the run did ended its own sessions,
    so every identity's answers above were its role's, not a signed-out 401."""
    for who in LOGINS:
        cookies, _ = fuzz.auth[who]
        reply = fuzz.http.get(fuzz.svc.url + "/openapi.json", cookies=cookies, timeout=20)
        assert reply.status_code == 200, f"{who} was signed out by the run"
