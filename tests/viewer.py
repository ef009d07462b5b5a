"""A viewer that really looks: an aiortc peer (standing in for the staff browser) takes a
look-in through the real service from a real agent, decodes frames, and reports the first
one, as the rounds page does. What an outcome rests on is then true, not asserted."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from camera_agent.protocol import answer_message, load_public_key, verify
from tests.people import Person


@dataclass
class Look:
    pc: RTCPeerConnection
    reply: dict[str, Any]
    frames: list[float] = field(default_factory=list)  # monotonic times of decoded frames
    reader: asyncio.Task[None] | None = None

    @property
    def session(self) -> str:
        return str(self.reply["session"])

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        await self.pc.close()


async def look(person: Person, check_id: int, *, report: bool = True,
               timeout: float = 15) -> Look:
    """Start a look-in, wait for the first decoded frame, report it (``report``), and keep
    reading frames in the background until ``close``."""
    pc = RTCPeerConnection()
    got_track: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    pc.on("track", lambda track: got_track.done() or got_track.set_result(track))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    started = time.monotonic()
    answer = await asyncio.to_thread(person.post, f"/api/checks/{check_id}/lookin",
                                     {"offer": pc.localDescription.sdp})
    assert answer.status_code == 200, answer.text
    reply = answer.json()
    assert verify(load_public_key(reply["agent_key"]), reply["signature"],
                  answer_message(reply["session"], reply["sdp"]))
    await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
    result = Look(pc, reply)
    track = await asyncio.wait_for(got_track, timeout)
    await asyncio.wait_for(track.recv(), timeout)
    result.frames.append(time.monotonic())

    async def read() -> None:
        try:
            while True:
                await track.recv()
                result.frames.append(time.monotonic())
        except (MediaStreamError, asyncio.CancelledError):
            pass
    result.reader = asyncio.create_task(read())
    if report:
        ttff = round((result.frames[0] - started) * 1000)
        sent = await asyncio.to_thread(person.post, f"/api/lookins/{result.session}/picture",
                                       {"ttff_ms": ttff})
        assert sent.status_code == 204, sent.text
        await camera_opened(person, result.session, timeout)
    return result


async def camera_opened(person: Person, session: str, timeout: float = 10) -> None:
    """Wait until the service has the agent's report that the camera opened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = (await asyncio.to_thread(person.get, f"/api/lookins/{session}")).json()
        if status["camera_opened_at"]:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the agent did not report the camera opened")


async def see(person: Person, check_id: int) -> str:
    """A complete look that reached the picture; the peer is closed again. The session."""
    seen = await look(person, check_id)
    await seen.close()
    return seen.session
