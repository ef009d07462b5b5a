"""What operators watch, on one real service with three real agents (JSON logs, a metrics
token): /healthz and /readyz, /metrics behind its token, an access log without credentials,
the agents' clock offsets, and SIGTERM during a look-in (last: it stops the service)."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from camera_agent.gate import SKEW
from camera_agent.protocol import CLOCK_TOLERANCE_SECONDS
from supervision.app import create_app
from supervision.config import Settings
from tests.harness import Service, eventually, start_world
from tests.people import Person
from tests.viewer import look

TOKEN = "scrape-me-0123456789abcdef"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_world(Path(tmp_path_factory.mktemp("ops")), log_format="json",
                          metrics_token=TOKEN)
    try:
        yield service
    finally:
        service.stop()


def scrape(svc: Service, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(svc.url + "/metrics", headers=headers, timeout=10)


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


def test_live_and_ready(svc: Service) -> None:
    assert httpx.get(svc.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(svc.url + "/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    assert "set-cookie" not in ready.headers


def test_metrics_need_the_token(svc: Service) -> None:
    assert scrape(svc, None).status_code == 401
    assert scrape(svc, "wrong-token-0123456789abcdef").status_code == 401
    admin = Person(svc.url, "admin")  # a session is not a scraper
    assert admin.get("/metrics").status_code == 401


def test_without_a_token_there_are_no_metrics(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/m.db",
                              data_dir=tmp_path))

    async def ask() -> list[int]:  # no lifespan: the route answers before any database
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test") as client:
            return [(await client.get("/metrics", headers=h)).status_code
                    for h in ({}, {"Authorization": "Bearer "})]
    assert asyncio.run(ask()) == [404, 404]


def test_metrics_say_what_the_night_is(svc: Service) -> None:
    text = eventually(lambda: (r := scrape(svc)).status_code == 200
                      and sample(r.text, "nattillsyn_agent_links") == 3 and r.text,
                      what="three agent links in the metrics")
    assert sample(text, "nattillsyn_cameras_offline") == 0
    assert sample(text, "nattillsyn_cameras_enrolled") == 3
    assert sample(text, "nattillsyn_sweep_lag_seconds") < 5
    for name in ('nattillsyn_checks{state="open"}', 'nattillsyn_alerts{state="new"}',
                 "nattillsyn_webhook_backlog", "nattillsyn_push_backlog",
                 "nattillsyn_lookin_ttff_seconds_gcount", "nattillsyn_alert_ack_seconds_gcount",
                 "nattillsyn_agent_clock_off"):
        sample(text, name)
    # an idle node's loop is never held long; no periodic full collection yet
    assert 0 <= sample(text, "nattillsyn_event_loop_stall_max_seconds") < 1.0
    assert sample(text, "nattillsyn_full_collection_last_seconds") == 0


def test_agents_report_their_clock_offset(svc: Service) -> None:
    assert CLOCK_TOLERANCE_SECONDS < SKEW, "flagged before the gate refuses tickets"
    admin = Person(svc.url, "admin")

    def offsets() -> list[float] | None:
        cams = admin.get("/api/cameras").json()["cameras"]
        found = [(c.get("health") or {}).get("clock_offset_seconds") for c in cams]
        return [float(o) for o in found] if all(o is not None for o in found) else None

    measured = eventually(offsets, what="every camera reporting its clock offset")
    assert all(abs(o) < 0.5 for o in measured), measured  # one host: one clock
    cams = admin.get("/api/cameras").json()["cameras"]
    assert not any(c["health"]["clock_off"] for c in cams)
    assert sample(scrape(svc).text, "nattillsyn_agent_clock_off") == 0


SECRET_TOKEN = "pw-link-token-DO-NOT-LOG-0123456789"
SECRET_SESSION = "lookin-session-DO-NOT-LOG-98765"
SECRET_QUERY = "query-value-DO-NOT-LOG"


def test_the_access_log_keeps_no_credential(svc: Service) -> None:
    staff = Person(svc.url, "natt")
    cookies = [c.value for c in staff.http.cookies.jar]
    assert cookies, "signed in with a session cookie"
    httpx.get(f"{svc.url}/account/password/{SECRET_TOKEN}")
    staff.get(f"/api/lookins/{SECRET_SESSION}?token={SECRET_QUERY}")
    httpx.get(f"{svc.url}/no/such/{SECRET_TOKEN}")
    staff.post("/api/checks/999999/lookin", {"offer": "v=0"})
    with connect(f"ws://127.0.0.1:{svc.port}/ws/patrol?token={SECRET_QUERY}") as ws:
        with pytest.raises(ConnectionClosed):  # no Origin: closed at once
            ws.recv(timeout=5)

    def access_lines() -> list[dict[str, object]]:
        lines = [json.loads(line) for line in svc.log.read_text().splitlines() if line.strip()]
        return [x for x in lines if x["logger"] == "supervision.access"]

    lines = eventually(lambda: (got := access_lines()) and any(
        str(x["path"]).startswith("/ws/patrol") for x in got) and got, what="access lines")
    paths = {str(x["path"]) for x in lines}
    assert "/account/password/{token}" in paths, paths
    assert "/api/lookins/{session}?token=…" in paths, paths
    assert "/no/such/…" in paths, paths
    assert "/api/checks/999999/lookin" in paths, "ids that are not credentials are kept"
    assert "/ws/patrol?token=…" in paths, paths
    whole = svc.log.read_text()  # every line is JSON (the parse above) and holds none of it
    for secret in (SECRET_TOKEN, SECRET_SESSION, SECRET_QUERY, *cookies, staff.csrf):
        assert secret not in whole, f"{secret[:12]}… reached the log"


def test_sigterm_during_a_lookin_ends_it_and_exits(svc: Service) -> None:
    staff = Person(svc.url, "natt")
    check_id = staff.wait_open_checks(1)[0]["id"]
    assert svc.proc is not None
    proc = svc.proc

    async def run() -> tuple[float, float, list[float], str]:
        seen = await look(staff, check_id)
        await asyncio.sleep(0.5)
        assert len(seen.frames) > 3, "the picture flows"
        text = (await asyncio.to_thread(scrape, svc)).text
        assert sample(text, 'nattillsyn_lookins{result="in-progress"}') == 1
        assert sample(text, "nattillsyn_lookin_ttff_seconds_gcount") == 1, "its reported TTFF"
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 15)
        exited = time.monotonic()
        await asyncio.sleep(1.5)  # a picture that went on would show here
        await seen.close()
        return asked, exited, list(seen.frames), seen.session

    asked, exited, frames, session = asyncio.run(run())
    svc.proc = None
    assert exited - asked < 5, f"exited {exited - asked:.1f} s after SIGTERM"
    assert frames[-1] < exited, "no frame after the service stopped"
    assert frames[-1] - asked < 2, f"frames went on {frames[-1] - asked:.1f} s after SIGTERM"
    db = sqlite3.connect(svc.root / "test.db")
    try:
        (reason, detail, ended), = db.execute(
            "SELECT end_reason, end_detail, ended_at FROM visits WHERE id = ?", (session,))
    finally:
        db.close()
    assert (reason, detail) == ("ended", "service-stopping") and ended, (reason, detail)
