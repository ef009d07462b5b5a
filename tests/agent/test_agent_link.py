"""The link: wss with a pinned certificate, garbled and oversize messages, health in the
heartbeat, and a device without a plan. A real agent process against the fake service."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiortc import MediaStreamTrack, RTCSessionDescription
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from camera_agent import __version__
from camera_agent.protocol import MAX_MESSAGE_BYTES, PLAN
from tests.agent.conftest import Rig, linked_agent
from tests.agent.fake_service import eventually, new_agent, plan_at, viewer_offer

pytestmark = pytest.mark.asyncio(loop_scope="module")


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the pin) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory, clip: Path) -> AsyncIterator[Rig]:
    """An agent over wss that pins the fake service's self-signed certificate; no plan yet.
    It streams H.264 with the left half of the picture masked."""
    root = tmp_path_factory.mktemp("link")
    cert, key = self_signed(root, "service")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    async with linked_agent(root / "agent", clip, plan_version=None, ssl_context=context,
                            ca_file=str(cert), codec="h264", enhance=False,
                            masks=[[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]]) as rig:
        yield rig


async def test_wss_links_only_with_the_pinned_certificate(
        rig: Rig, tmp_path: Path) -> None:
    assert rig.fake.url.startswith("https://") and rig.fake.links == 1
    # a device pinned to another certificate never gets as far as authenticating
    other_cert, _ = self_signed(tmp_path, "someone-else")
    stranger = new_agent(tmp_path / "stranger")
    stranger.configure(rig.fake.url, rig.fake.public_key_b64, ca_file=str(other_cert))
    stranger.start()
    try:
        await eventually(lambda: stranger.log().count("CERTIFICATE_VERIFY_FAILED") >= 2, 20,
                         "the stranger kept dialling and failing verification")
        assert stranger.proc is not None and stranger.proc.poll() is None, "keeps trying"
    finally:
        stranger.stop()
    assert rig.fake.links == 1 and rig.fake.refused_links == 0


async def test_heartbeat_carries_health(rig: Rig) -> None:
    beat = await rig.fake.wait_for(lambda r: r.type == "heartbeat",
                                   after=len(rig.fake.received))
    health = beat.msg["health"]
    assert health["camera_present"] is True
    assert health["version"] == __version__
    assert isinstance(health["free_memory_mb"], int) and health["free_memory_mb"] > 0
    assert "last_lookin" in health and health["plan_version"] is None
    assert "last_lookin_detail" in health


async def test_without_a_signed_plan_every_lookin_is_refused(rig: Rig) -> None:
    ticket, token = rig.fake.ticket()
    pc, offer = await viewer_offer()
    try:
        await rig.fake.lookin(token, ticket, offer)
        reply = await rig.fake.reply_to(ticket.session)
    finally:
        await pc.close()
    assert reply.type == "refused" and reply.msg["reason"] == "no-plan"
    assert not rig.fake.of_type("camera") and not rig.watch.intervals


async def test_garbled_messages_are_dropped_and_the_link_stays(rig: Rig) -> None:
    links = rig.fake.links
    for junk in ("not json", b"\x00\xff binary", "[1, 2]", '{"type": "bogus"}',
                 '{"no": "type"}'):
        await rig.fake.send_raw(junk)
    mark = len(rig.fake.received)
    await rig.fake.send_raw('{"type": "lookin", "session": "s1"}')  # fields missing
    refusal = await rig.fake.wait_for(lambda r: r.type == "refused", after=mark)
    assert refusal.msg["reason"] == "garbled" and refusal.msg["session"] == "s1"
    assert rig.agent.log().count("garbled message from service ignored") == 5
    await rig.fake.push_plan(plan_at(0), 7)  # the link still works
    assert rig.fake.links == links


async def test_oversize_message_closes_the_link_and_the_agent_relinks(rig: Rig) -> None:
    links = rig.fake.links
    await rig.fake.send_raw('{"type": "plan", "pad": "' + "x" * MAX_MESSAGE_BYTES + '"}')
    await eventually(lambda: rig.fake.links > links, 15, "the agent relinked")
    assert "the service sent a message over" in rig.agent.log()
    await rig.fake.wait_linked()
    await rig.fake.push_plan(plan_at(0), 8)
    # a message just under the bound is still handled
    mark = len(rig.fake.received)
    fields = rig.fake.signed_plan(plan_at(0), 9)
    await rig.fake.send(PLAN, pad="y" * (MAX_MESSAGE_BYTES - 2000), **fields)
    await rig.fake.wait_for(lambda r: r.type == "heartbeat"
                            and r.msg["health"]["plan_version"] == 9, after=mark)


async def test_configured_codec_and_privacy_mask_reach_the_viewer(rig: Rig) -> None:
    """What leaves the device: H.264 as configured, the masked half black after encoding."""
    await rig.fake.push_plan(plan_at(0), 10)
    ticket, token = rig.fake.ticket(seconds=10)
    pc, offer = await viewer_offer()
    tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    pc.on("track", tracks.put_nowait)
    try:
        await rig.fake.lookin(token, ticket, offer)
        reply = await rig.fake.reply_to(ticket.session)
        assert reply.type == "answer", reply.msg
        rtpmaps = [line for line in reply.msg["sdp"].splitlines() if "rtpmap" in line]
        assert "H264/90000" in rtpmaps[0], rtpmaps
        await pc.setRemoteDescription(RTCSessionDescription(reply.msg["sdp"], "answer"))
        track = await asyncio.wait_for(tracks.get(), 15)
        for _ in range(5):  # past the first, blurriest frames
            frame = await asyncio.wait_for(track.recv(), 10)
    finally:
        await pc.close()
    luma = frame.to_ndarray(format="gray")
    assert luma.shape == (480, 640)
    masked, open_ = luma[:, : 320 - 16], luma[:, 320 + 16 :]
    assert masked.mean() < 20 and masked.max() < 60, "masked half is black"
    assert open_.mean() > 35, "the rest of the picture is there"
