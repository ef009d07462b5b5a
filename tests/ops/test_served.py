"""What the server runs (``app.served``): a camera's link goes straight to its handler,
with the access log around it; everything else through the whole stack as before."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

from camera_agent.protocol import decode_message
from supervision.app import create_app, served
from supervision.config import Settings

with warnings.catch_warnings():  # Starlette would rather have httpx2; httpx serves here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def test_the_link_skips_the_stack_but_not_the_log(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/s.db",
                              data_dir=tmp_path))
    caplog.set_level(logging.INFO, logger="supervision.access")
    with TestClient(served(app)) as client:
        page = client.get("/healthz")  # HTTP: through the guards (their headers on it)
        assert page.status_code == 200
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        with client.websocket_connect("/ws/agent") as ws:  # the runtime is found
            challenge = decode_message(ws.receive_text(), frozenset({"challenge"}))
            assert len(challenge["nonce"]) >= 32
            ws.send_text('{"type": "auth", "camera": "cam-x", "signature": "AA"}')
        unknown = client.get("/ws/agentx")
        assert unknown.status_code == 404 and "content-security-policy" in unknown.headers
    logged = [r.getMessage() for r in caplog.records if r.name == "supervision.access"]
    assert any(m.startswith("WS /ws/agent ") for m in logged), logged
