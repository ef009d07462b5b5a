"""Nothing the service relays may cut a camera's link (issue 9, the class of the plan that
did not fit): a look-in offer the API accepts (up to 60,000 characters) can be several
times the agent's 64 KiB message limit in UTF-8. The service refuses it as ``bad-offer``
instead of sending it, so the agent never closes its link over it. Real service, real
agents."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from camera_agent.protocol import MAX_MESSAGE_BYTES
from tests.harness import Service, start_world
from tests.people import Person


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_world(Path(tmp_path_factory.mktemp("link-size")))
    try:
        yield service
    finally:
        service.stop()


def test_an_offer_too_big_for_the_link_is_refused_and_the_link_stays(svc: Service) -> None:
    staff = Person(svc.url, "natt")
    check = staff.wait_open_checks(1)[0]
    camera_id = next(c["camera_id"] for c in svc.world["cameras"]
                     if c["recipient"] == check["recipient"])
    log = svc.agent_dir(camera_id) / "agent.log"
    links = log.read_text().count("link up")
    offer = "v=0\r\n" + "😀" * 20_000  # 20,005 characters, 80 kB as UTF-8
    assert len(offer.encode()) > MAX_MESSAGE_BYTES

    started = time.monotonic()
    reply = staff.post(f"/api/checks/{check['id']}/lookin", {"offer": offer})
    assert reply.status_code == 409, reply.text
    assert reply.json()["detail"]["reason"] == "bad-offer"
    assert time.monotonic() - started < 5, "refused at once, not after waiting for an answer"
    time.sleep(2.5)  # a link the agent closed would be back up by now, and say so
    text = log.read_text()
    assert "the service sent a message over" not in text
    assert text.count("link up") == links, "the camera's link never dropped"
