"""`camera-agent doctor` against a real service and a real RTSP camera: all good, then each
failure it reports, each with what to do, in English and Swedish, exit status 1."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from camera_agent import doctor
from camera_agent.identity import Identity
from tests.harness import BIN, Service, make_service
from tests.rtsp.conftest import PASSWORD, USER
from tests.rtsp.server import RtspServer


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory,
             camera: RtspServer) -> Iterator[tuple[Service, Path]]:
    """A real service, one camera enrolled with the RTSP source; its agent ran once (to
    receive its plan) and was stopped again."""
    svc = make_service(tmp_path_factory.mktemp("doctor") / "svc")
    svc.start()
    try:
        cam = svc.world["cameras"][0]
        state = svc.enrol(cam, source=camera.url(USER, PASSWORD))
        svc.configure_agent(cam["camera_id"], enhance=False)
        agent = svc.start_agent(cam["camera_id"])
        try:
            camera.wait(lambda: (state / "plan.json").exists(), 30, "the agent got its plan")
        finally:
            agent.terminate()
            agent.wait(10)
        yield svc, state / "agent.toml"
    finally:
        svc.stop()


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


def test_all_good_with_the_camera(enrolled: tuple[Service, Path], camera: RtspServer) -> None:
    _, config = enrolled
    assert camera.clients == [], "the agent never opened the camera outside a look-in"
    code, out = run(config, "--camera", lang="en_GB.UTF-8")
    assert code == 0, out
    lines = out.strip().splitlines()
    assert all(line.startswith(("[OK  ]", "[INFO]")) for line in lines), out
    for words in ("device key", "mode 0600", "reachable", "clock within",
                  "service key verified", "TURN: the service hands", "holds plan version",
                  "opened and gave a frame (H.264 keyframe", "released at once",
                  "video path when streaming: passthrough"):
        assert words in out, f"{words!r} missing in:\n{out}"
    assert PASSWORD not in out and "***@127.0.0.1" in out
    player, = camera.players()
    camera.wait(lambda: player.left, 2, "the camera released")


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
    # STUN that does not answer (TURN has no credential on the device to check)
    stun = variant(config, tmp_path / "e", ice_servers=f'[{{urls = "stun:127.0.0.1:{closed}"}}]')
    assert (await findings(stun))["stun-bad"] == "fail"
    # a camera that does not answer
    gone = variant(config, tmp_path / "f", source=f'"rtsp://127.0.0.1:{closed}/cam"')
    found = await doctor.run_checks(gone, camera=True)
    bad = next(f for f in found if f.key == "camera-bad")
    assert bad.values["reason"] == "camera-unreachable"
    assert "powered" in bad.text("en")


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
