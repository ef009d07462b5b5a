"""The RTSP capture in-process against a real RTSP server on loopback: both video paths,
the transport setting, failures that say what is wrong (without the password), the
picture's path as the heartbeat reports it, and the keyframe request that makes the first
frame come at once from a camera with a long I-frame interval."""

from __future__ import annotations

import asyncio
import logging
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
from tests.agent.fake_service import eventually
from tests.rtsp.conftest import PASSWORD, USER, keyframe_command, running_camera
from tests.rtsp.server import RtspServer

SLOW_GOP_SECONDS = 10.0  # slow_camera's own I-frame interval
FIRST_FRAME_BOUND = 2.0  # s from open() to the first frame when a keyframe is made at once


@pytest.fixture(scope="module")
def slow_camera() -> Iterator[RtspServer]:
    """A camera that makes a keyframe of its own only every SLOW_GOP_SECONDS."""
    with running_camera(gop=int(SLOW_GOP_SECONDS * 10)) as server:
        yield server


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


async def fresh_gop(camera: RtspServer) -> float:
    """Make the camera start a GOP now; the instant its own next keyframe is due."""
    count = len(camera.keyframes)
    camera.request_keyframe()
    await asyncio.to_thread(camera.wait, lambda: len(camera.keyframes) > count, 2,
                            "a keyframe")
    return camera.keyframes[-1][0] + SLOW_GOP_SECONDS


async def first_keyframe(capture: Capture) -> tuple[bytes, float]:
    """Open `capture` and take its first frame: (frame, when it came)."""
    await capture.open()
    first = await capture.read_packet()
    return first, time.monotonic()


async def test_keyframe_command_brings_the_first_frame_at_once(
        slow_camera: RtspServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="camera_agent")
    own_next = await fresh_gop(slow_camera)
    asked = len(slow_camera.keyframe_requests)
    capture = Capture(slow_camera.url(USER, PASSWORD), passthrough=True, enhance=False,
                      keyframe_command=keyframe_command(slow_camera, tmp_path / "netrc"))
    started = time.monotonic()
    try:
        first, came = await first_keyframe(capture)
        assert {7, 8, 5} <= rtsp.nal_types(first)
        assert came - started < FIRST_FRAME_BOUND, f"first frame after {came - started:.2f} s"
        assert came < own_next - SLOW_GOP_SECONDS / 2, "the camera's own keyframe was near"
        assert any(forced and started < at < came for at, forced in slow_camera.keyframes)
    finally:
        await capture.close()
    requests = slow_camera.keyframe_requests[asked:]
    assert 1 <= len(requests) <= 2 and started < requests[0] < came, requests
    assert "keyframe asked of the camera (curl" in caplog.text
    assert PASSWORD not in caplog.text and str(tmp_path) not in caplog.text


async def test_a_camera_that_starts_each_session_with_a_keyframe(
        slow_camera: RtspServer) -> None:
    await fresh_gop(slow_camera)
    asked = len(slow_camera.keyframe_requests)
    slow_camera.keyframe_on_play = True
    capture = Capture(slow_camera.url(USER, PASSWORD), passthrough=True, enhance=False)
    started = time.monotonic()
    try:
        first, came = await first_keyframe(capture)
        assert 5 in rtsp.nal_types(first) and came - started < FIRST_FRAME_BOUND
        assert len(slow_camera.keyframe_requests) == asked, "nobody asked"
    finally:
        slow_camera.keyframe_on_play = False
        await capture.close()


async def test_a_failing_keyframe_request_is_logged_without_its_arguments(
        camera: RtspServer, caplog: pytest.LogCaptureFixture) -> None:
    """Refused by the camera, or hung: logged by the program's name, and the first frame
    is the camera's own next keyframe (0.5 s apart here)."""
    caplog.set_level(logging.INFO, logger="camera_agent")
    refused = (f"curl --fail --silent --max-time 3 -u {USER}:not-{PASSWORD} -X PUT "
               f"{camera.keyframe_url()}")
    hung = f"sh -c 'sleep 5' {PASSWORD}"
    for command, logged in ((refused, "keyframe request curl exited with 22"),
                            (hung, "keyframe request sh killed after 0.3 s")):
        capture = Capture(camera.url(USER, PASSWORD), passthrough=True, enhance=False,
                          keyframe_command=command, keyframe_timeout_s=0.3)
        try:
            first, _ = await first_keyframe(capture)
            assert 5 in rtsp.nal_types(first)
            await eventually(lambda: logged in caplog.text, 3, logged)  # noqa: B023
        finally:
            await capture.close()
    assert PASSWORD not in caplog.text


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
    for bad in ("", "  ", f'curl -u "{USER}:{PASSWORD}'):
        with pytest.raises(ValueError, match="keyframe_command") as caught:
            config(keyframe_command=bad)
        assert PASSWORD not in str(caught.value)
    assert Capture("synthetic", keyframe_command="curl x").keyframe_command is None
