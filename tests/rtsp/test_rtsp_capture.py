"""The RTSP capture in-process against a real RTSP server on loopback: both video paths,
the transport setting, failures that say what is wrong (without the password), and the
picture's path as the heartbeat reports it."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from camera_agent import rtsp
from camera_agent.capture import Capture, CaptureError
from camera_agent.config import AgentConfig
from camera_agent.video_path import ENCODE, PASSTHROUGH, planned
from tests.rtsp.conftest import PASSWORD, USER
from tests.rtsp.server import RtspServer


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never says a word (a hung camera)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        yield int(s.getsockname()[1])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def open_fails(source: str, deadline: float = 5.0) -> tuple[CaptureError, float]:
    capture = Capture(source, open_deadline_s=deadline)
    started = time.monotonic()
    with pytest.raises(CaptureError) as caught:
        await capture.open()
    took = time.monotonic() - started
    await capture.close()
    return caught.value, took


async def test_unreachable_camera_says_so_at_once() -> None:
    error, took = await open_fails(f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{closed_port()}/cam")
    assert error.reason == rtsp.UNREACHABLE and took < 1.0
    assert "did not answer" in error.detail
    assert PASSWORD not in str(error) and USER not in str(error)


async def test_silent_camera_fails_at_the_open_deadline(silent_port: int) -> None:
    error, took = await open_fails(f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{silent_port}/cam",
                                   deadline=1.0)
    assert error.reason in (rtsp.UNREACHABLE, "open-failed")
    assert took < 1.0 + 0.6, f"took {took:.2f} s"
    assert PASSWORD not in str(error)


async def test_refused_credentials_say_so(camera: RtspServer) -> None:
    error, took = await open_fails(camera.url(USER, "wrong-password"))
    assert error.reason == rtsp.BAD_CREDENTIALS and took < 1.0
    assert "refused the credentials" in error.detail and "wrong-password" not in str(error)
    assert camera.clients[-1].refused_auth >= 1 and camera.clients[-1].played_at is None


async def test_decoded_over_udp_when_configured(camera: RtspServer) -> None:
    capture = Capture(camera.url(USER, PASSWORD), width=320, height=240,
                      rtsp_transport="udp", passthrough=True, enhance=True)
    await capture.open()
    try:
        assert not capture.passthrough, "enhancement means decoding"
        assert capture.camera_codec == "h264"
        frame = await capture.read()
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
        player = camera.players()[-1]
        assert "client_port=" in player.transport and "TCP" not in player.transport
    finally:
        await capture.close()
    await asyncio.to_thread(camera.wait, lambda: player.left, 2, "the camera saw us leave")


async def test_mask_forbids_passthrough(camera: RtspServer) -> None:
    left_half = [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]
    capture = Capture(camera.url(USER, PASSWORD), passthrough=True, enhance=False,
                      masks=[left_half])
    await capture.open()
    try:
        assert not capture.passthrough
        frame = await capture.read()
        assert not frame[:, :300].any(), "the masked half leaves the device black"
        assert frame[:, 340:].any()
    finally:
        await capture.close()


async def test_passthrough_starts_at_a_keyframe_with_its_parameter_sets(
        camera: RtspServer) -> None:
    capture = Capture(camera.url(USER, PASSWORD), passthrough=True, enhance=False)
    await capture.open()
    try:
        assert capture.passthrough
        first = await capture.read_packet()
        assert {7, 8, 5} <= rtsp.nal_types(first), "SPS, PPS and an IDR slice first"
        later = [await capture.read_packet() for _ in range(3)]
        assert all(1 in rtsp.nal_types(p) or 5 in rtsp.nal_types(p) for p in later)
    finally:
        await capture.close()


def test_redact_hides_user_password_and_query() -> None:
    assert rtsp.redact("rtsp://admin:pw@10.0.0.5:554/Streaming/101?token=pw") == \
        "rtsp://***@10.0.0.5:554/Streaming/101?***"
    assert rtsp.redact("rtsp://10.0.0.5/live") == "rtsp://10.0.0.5/live"
    assert rtsp.redact("/dev/video0") == "/dev/video0"


def test_video_path_reasons(tmp_path: Path) -> None:
    def config(**values: object) -> AgentConfig:
        return AgentConfig(server_url="http://x", camera_id="c", server_public_key="k",
                           state_dir=tmp_path, **values)  # type: ignore[arg-type]

    cam = "rtsp://u:p@cam/stream"
    assert planned(config(source=cam, enhance=False)).path == PASSTHROUGH
    assert planned(config(source=cam)).reason == "enhance"
    assert planned(config(source=cam, enhance=False,
                          masks=[[(0, 0), (1, 0), (1, 1)]])).reason == "masks"
    assert planned(config(source=cam, enhance=False, passthrough=False)).reason == \
        "passthrough-off"
    assert planned(config(source="synthetic")).path == ENCODE
    with pytest.raises(ValueError, match="rtsp_transport"):
        config(rtsp_transport="http")
