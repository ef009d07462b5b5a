"""A real service (with a real coturn) and a real RTSP camera: a look-in watched in Chromium
gets the camera's own H.264, passed through; then `camera-agent doctor` against them: all
good, then each failure it reports, each with what to do, in English and Swedish, exit
status 1."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

import pytest

from camera_agent import doctor
from camera_agent.identity import Identity
from tests.browser.conftest import login
from tests.conftest import CHROMIUM, need
from tests.harness import BIN, Service, make_service
from tests.people import Person
from tests.rtsp.conftest import PASSWORD, USER
from tests.rtsp.server import RtspServer
from tests.turn.browser import RECORD_PEERS, wait_playing
from tests.turn.coturn import Coturn, have_coturn, start_coturn

SECRET = "doctor-test-secret-0123456789abcdef"


@dataclass
class World:
    svc: Service
    coturn: Coturn
    state: Path                        # the enrolled device's state directory
    agent: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, camera: RtspServer) -> Iterator[World]:
    """A real service with TURN (coturn, per-look-in credentials), one camera enrolled with
    the RTSP source, its agent linked and holding its plan."""
    need(have_coturn(), "coturn's turnserver not found (apt-get install coturn)")
    root = tmp_path_factory.mktemp("rtsp-service")
    coturn = start_coturn(root / "coturn", SECRET)
    svc = make_service(root / "svc", turn_urls=json.dumps([coturn.url]), turn_secret=SECRET)
    world: World | None = None
    svc.start()
    try:
        cam = svc.world["cameras"][0]
        state = svc.enrol(cam, source=camera.url(USER, PASSWORD))
        svc.configure_agent(cam["camera_id"], enhance=False)
        agent = svc.start_agent(cam["camera_id"])
        camera.wait(lambda: (state / "plan.json").exists(), 30, "the agent got its plan")
        world = World(svc, coturn, state, agent)
        yield world
    finally:
        svc.stop()
        (world.coturn if world is not None else coturn).stop()


@pytest.fixture(scope="module")
def enrolled(world: World) -> tuple[Service, Path]:
    """The device without its agent: doctor links in the agent's place."""
    world.agent.terminate()
    world.agent.wait(10)
    return world.svc, world.state / "agent.toml"


#: the codec Chromium decoded, from the page's last peer's inbound video
INBOUND_CODEC = """
async () => {
  const pc = window.nattPeers[window.nattPeers.length - 1].pc;
  const stats = await pc.getStats();
  let codec = null;
  stats.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video' && r.codecId) {
      const c = stats.get(r.codecId);
      codec = { mime: c.mimeType, frames: r.framesDecoded };
    }
  });
  return codec;
}
"""


def test_chromium_plays_the_cameras_own_h264(world: World, camera: RtspServer) -> None:
    """Staff press Start in Chromium: the picture is the camera's H.264 as it came (no
    decoding and encoding on the device), the camera is connected to only for the look-in,
    and the RTSP session is torn down when the viewer closes it."""
    need(os.path.exists(CHROMIUM), f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import FLAGS
    svc = world.svc
    cam = svc.world["cameras"][0]
    Person(svc.url, "natt").wait_open_checks(1)
    assert camera.players() == [], "the camera is not connected to before the look-in"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_context(locale="sv-SE").new_page()
            page.add_init_script(RECORD_PEERS)
            login(page, svc.url, "natt")
            row = page.locator("li.check.state-open", has_text=cam["recipient"])
            with page.expect_response(re.compile(r"/api/checks/\d+/lookin$")) as info:
                row.locator("button.start").click()
            assert info.value.ok, info.value.text()
            wait_playing(page, width=639)  # the camera's own 640x480
            codec = page.evaluate(INBOUND_CODEC)
            player, = camera.players()
            assert player.playing and "TCP" in player.transport.upper(), player
            page.click("#lookin-close")
            camera.wait(lambda: player.left, 5, "the camera released after the look-in")
        finally:
            browser.close()
    assert codec is not None and codec["mime"] == "video/H264" and codec["frames"] > 0, codec
    health = world.svc.agent_dir(cam["camera_id"])
    assert PASSWORD not in "".join(p.read_text(errors="replace")
                                   for p in health.rglob("*.log") if p.is_file())


def variant(config: Path, tmp: Path, **values: object) -> Path:
    """A copy of the device's state with some settings changed."""
    copy = tmp / "state"
    shutil.copytree(config.parent, copy)
    text = [ln for ln in (copy / "agent.toml").read_text().splitlines()
            if ln.split("=")[0].strip() not in values and not ln.startswith("state_dir")]
    for key, value in values.items():
        text.append(f"{key} = {value}")
    text.append('state_dir = "."')
    (copy / "agent.toml").write_text("\n".join(text) + "\n")
    return copy / "agent.toml"


def run(config: Path, *args: str, lang: str = "en") -> tuple[int, str]:
    done = subprocess.run([str(BIN / "camera-agent"), "doctor", "--config", str(config),
                           *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, LANG=lang))
    return done.returncode, done.stdout + done.stderr


async def findings(config: Path, camera: bool = False) -> dict[str, str]:
    """key -> status of what doctor found (in-process; the same code the command runs)."""
    return {f.key: f.status for f in await doctor.run_checks(config, camera)}


def test_all_good_with_the_camera(world: World, enrolled: tuple[Service, Path],
                                  camera: RtspServer) -> None:
    _, config = enrolled
    before = len(camera.clients)
    code, out = run(config, lang="en_GB.UTF-8")
    assert code == 0, out
    assert len(camera.clients) == before, "without --camera, doctor leaves the camera alone"
    code, out = run(config, "--camera", lang="en_GB.UTF-8")
    assert code == 0, out
    lines = out.strip().splitlines()
    assert all(line.startswith(("[OK  ]", "[INFO]")) for line in lines), out
    for words in ("device key", "mode 0600", "reachable", "clock within",
                  "service key verified: it signed our challenge",
                  f"TURN {world.coturn.url} relays for this device (relayed address 127.0.0.1:",
                  "holds plan version",
                  "opened and gave a frame (H.264 keyframe", "released at once",
                  "video path when streaming: passthrough"):
        assert words in out, f"{words!r} missing in:\n{out}"
    assert PASSWORD not in out and "***@127.0.0.1" in out and SECRET not in out
    player = camera.players()[-1]
    camera.wait(lambda: player.left, 2, "the camera released")
    # the relay was tested with a credential minted for this camera's probe: a minute long
    probe = re.search(r"user <(\d+):probe-([^>]+)>: incoming packet ALLOCATE processed, "
                      "success", world.coturn.log)
    assert probe is not None, world.coturn.log[-2000:]
    assert probe.group(2) == world.svc.world["cameras"][0]["camera_id"]
    assert 0 < int(probe.group(1)) - __import__("time").time() <= 61


def test_swedish_failures_say_what_to_do(enrolled: tuple[Service, Path], camera: RtspServer,
                                         tmp_path: Path) -> None:
    _, config = enrolled
    bad = variant(config, tmp_path, source=f'"{camera.url(USER, "fel-lösen")}"')
    os.chmod(bad.parent / "agent.key", 0o644)
    code, out = run(bad, "--camera", lang="sv_SE.UTF-8")
    assert code == 1, out
    assert "[FEL ] enhetsnyckeln" in out and "chmod 600" in out
    assert "[FEL ] kameran rtsp://***@127.0.0.1" in out and "camera-credentials" in out
    assert "Ange kamerans användarnamn och lösenord" in out
    assert "fel-lösen" not in out and PASSWORD not in out


async def test_each_failure(enrolled: tuple[Service, Path], camera: RtspServer,
                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, config = enrolled
    monkeypatch.setattr(doctor, "TURN_SECONDS", 1.0)  # a TURN server that never answers
    # config unreadable
    broken = tmp_path / "broken.toml"
    broken.write_text("server_url = \n")
    assert await findings(broken) == {"config-bad": "fail"}
    # key missing
    nokey = variant(config, tmp_path / "a")
    (nokey.parent / "agent.key").unlink()
    assert (await findings(nokey))["key-missing"] == "fail"
    # a key the service does not know (enrolled elsewhere): the link is refused
    other = variant(config, tmp_path / "b")
    (other.parent / "agent.key").unlink()
    Identity.create(other.parent / "agent.key")
    assert (await findings(other))["link-refused"] == "fail"
    # a pinned key that is not the service's
    stranger = Identity.create(tmp_path / "stranger.key").public_key_b64
    pinned = variant(config, tmp_path / "c", server_public_key=f'"{stranger}"')
    assert (await findings(pinned))["key-mismatch"] == "fail"
    # service unreachable
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    away = variant(config, tmp_path / "d", server_url=f'"http://127.0.0.1:{closed}"')
    assert (await findings(away))["server-down"] == "fail"
    # STUN that does not answer
    stun = variant(config, tmp_path / "e", ice_servers=f'[{{urls = "stun:127.0.0.1:{closed}"}}]')
    assert (await findings(stun))["stun-bad"] == "fail"
    # a camera that does not answer
    gone = variant(config, tmp_path / "f", source=f'"rtsp://127.0.0.1:{closed}/cam"')
    found = await doctor.run_checks(gone, camera=True)
    bad = next(f for f in found if f.key == "camera-bad")
    assert bad.values["reason"] == "camera-unreachable"
    assert "powered" in bad.text("en")


async def test_turn_failures(world: World, enrolled: tuple[Service, Path], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The TURN server down, then one whose secret is not the service's: each said, with
    what to do; then the right one back where the service expects it."""
    _, config = enrolled
    monkeypatch.setattr(doctor, "TURN_SECONDS", 1.5)
    port = world.coturn.port
    world.coturn.stop()
    try:
        found = {f.key: f for f in await doctor.run_checks(config, camera=False)}
        assert found["turn-bad"].status == "fail" and found["key-match"].status == "ok"
        assert f"port {port} outbound" in found["turn-bad"].text("en")
        world.coturn = start_coturn(tmp_path / "other", "not-the-service-secret", port)
        found = {f.key: f for f in await doctor.run_checks(config, camera=False)}
        refused = found["turn-refused"]
        assert refused.status == "fail" and refused.values["code"] == 401
        assert "static-auth-secret" in refused.text("sv")
        assert "not-the-service-secret" not in refused.text("en")
    finally:
        world.coturn.stop()
        world.coturn = start_coturn(tmp_path / "again", SECRET, port)
    assert (await findings(config))["turn-ok"] == "ok"


class _SlowClock(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def date_time_string(self, timestamp: float | None = None) -> str:
        return formatdate(__import__("time").time() - 90, usegmt=True)

    def log_message(self, *_: object) -> None:
        pass


async def test_clock_off(enrolled: tuple[Service, Path], tmp_path: Path) -> None:
    """A server whose Date is 90 s behind ours: the offset is reported as a failure."""
    _, config = enrolled
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowClock)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        skewed = variant(config, tmp_path,
                         server_url=f'"http://127.0.0.1:{server.server_address[1]}"')
        found = await doctor.run_checks(skewed, camera=False)
        clock = next(f for f in found if f.key == "clock-off")
        assert clock.status == "fail" and -92 < float(clock.values["offset"]) < -88  # type: ignore[arg-type]
        assert "timedatectl set-ntp true" in clock.text("en")
    finally:
        server.shutdown()
