"""`camera-agent doctor`: the installer's check of a device, one line per finding.

Each line says what is right or wrong and, when wrong, what to do, in Swedish or English
(`--lang`, else LANG). The exit status is 1 when any line is a failure, else 0. It checks,
in order: the config file, the device key (present, 0600, readable), the service (reachable
over HTTP, its clock, the agent link accepting this camera's key, the pinned service key
verified against a plan the service signs on linking), TURN servers from the config (a real
allocation with the configured credential), the plan the device holds, and - only with
`--camera`, since the camera must not be switched on unasked - that the camera opens and
delivers one frame, after which it is released at once. No frame is stored or sent. The
look-in gate is not involved. While doctor holds the agent link (a few seconds) a running
agent is replaced on the service and links again by itself.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import ssl
import stat
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from camera_agent import rtsp
from camera_agent.capture import Capture, CaptureError, describe_source
from camera_agent.config import AgentConfig
from camera_agent.gate import SKEW, PlanStore
from camera_agent.identity import Identity
from camera_agent.protocol import (
    AUTH,
    CHALLENGE,
    CLOSE_AUTH_FAILED,
    CLOSE_REVOKED,
    ICE_PROBE,
    ICE_SERVERS,
    MAX_MESSAGE_BYTES,
    SERVICE_TYPES,
    WELCOME,
    Refusal,
    decode_message,
    encode_message,
    link_challenge_message,
    load_public_key,
    new_nonce,
    verify,
    welcome_message,
)
from camera_agent.video_path import planned

OK, FAIL, INFO = "ok", "fail", "info"
NET_SECONDS = 5.0   # each network step
TURN_SECONDS = 4.0

LABELS = {"sv": {OK: "OK  ", FAIL: "FEL ", INFO: "INFO"},
          "en": {OK: "OK  ", FAIL: "FAIL", INFO: "INFO"}}

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "config-ok": "config {path} read: camera {camera}, source {source}",
        "config-bad": "cannot read the config {path}: {error}. Enrol the device "
                      "(camera-agent enrol) or correct the file, then run doctor again.",
        "key-ok": "device key {path} present, mode 0600",
        "key-missing": "no device key at {path}. Enrol the device: camera-agent enrol "
                       "--server URL --code CODE.",
        "key-mode": "device key {path} has mode {mode}; others could read it. Run: "
                    "chmod 600 {path} (and chown it to the agent's user).",
        "key-bad": "device key {path} cannot be read: {error}. Enrol the device again.",
        "server-ok": "service {url} reachable",
        "server-down": "service {url} not reachable: {error}. Check the address, the "
                       "network and the firewall (outbound HTTPS), and ca_file for a "
                       "private certificate.",
        "clock-ok": "clock within {offset:+.1f} s of the service",
        "clock-off": "clock is {offset:+.1f} s off the service's; the device refuses "
                     "tickets beyond {skew:g} s. Turn on time sync: timedatectl set-ntp true.",
        "clock-unknown": "the service's answer had no date; clock not checked",
        "link-refused": "the service does not accept this camera's key (closed with {code}): "
                        "revoked or enrolled elsewhere. Get a new code from the admin and "
                        "enrol again.",
        "link-down": "agent link {url} failed: {error}. Check that a proxy in front of the "
                     "service passes WebSockets.",
        "key-match": "service key verified: it signed our challenge with the pinned key",
        "key-mismatch": "the service signs with a key other than the one pinned at "
                        "enrolment. If the service was moved on purpose, enrol again; "
                        "otherwise this is not your service: stop and ask the admin.",
        "key-unchecked": "linked, but the service did not sign our challenge, so its key "
                         "could not be checked: it is older than this agent. Ask the admin "
                         "to upgrade the service.",
        "link-skipped": "agent link not tried (see above)",
        "stun-ok": "STUN {url} answers: this device is seen as {mapped}",
        "stun-bad": "STUN {url} failed: {error}. Check the address and that UDP 3478 "
                    "outbound is open.",
        "turn-ok": "TURN {url} relays for this device (relayed address {relayed}), with a "
                   "test credential from the service; look-ins get their own, none is kept "
                   "here",
        "turn-refused": "TURN {url} refused the service's credential (error {code}). The "
                        "TURN secret of the service (SUPERVISION_TURN_SECRET) and of the TURN "
                        "server (static-auth-secret) must be the same: ask the admin.",
        "turn-bad": "TURN {url} failed: {error}. Check the address and that port {port} "
                    "outbound (UDP, or TCP for transport=tcp) is open.",
        "turn-none": "the service names no TURN server: a home whose router or mobile "
                     "network blocks direct connections cannot be looked in on",
        "plan-ok": "holds plan version {version}: {count} check time(s) {times}, "
                   "time zone {tz}",
        "plan-none": "holds no plan yet: every look-in is refused until the service sends "
                     "one (it does when the agent links and the person has a plan).",
        "camera-skipped": "camera not opened (add --camera to open it once and release it)",
        "camera-ok": "camera {source} opened and gave a frame ({what}) in {ms} ms; released "
                     "at once",
        "camera-bad": "camera {source} failed: {reason}: {detail}. {advice}",
        "path": "video path when streaming: {path} ({reason})",
        "advice-camera-credentials": "Put the camera's user name and password in source.",
        "advice-camera-unreachable": "Check the camera's address and that it is powered "
                                     "and on this network.",
        "advice-other": "Check the source in the config and the camera's settings.",
    },
    "sv": {
        "config-ok": "konfigurationen {path} läst: kamera {camera}, källa {source}",
        "config-bad": "kan inte läsa konfigurationen {path}: {error}. Registrera enheten "
                      "(camera-agent enrol) eller rätta filen och kör doctor igen.",
        "key-ok": "enhetsnyckeln {path} finns, rättigheter 0600",
        "key-missing": "ingen enhetsnyckel i {path}. Registrera enheten: camera-agent enrol "
                       "--server URL --code KOD.",
        "key-mode": "enhetsnyckeln {path} har rättigheter {mode}; andra kan läsa den. Kör: "
                    "chmod 600 {path} (och chown till agentens användare).",
        "key-bad": "enhetsnyckeln {path} går inte att läsa: {error}. Registrera enheten igen.",
        "server-ok": "tjänsten {url} nås",
        "server-down": "tjänsten {url} nås inte: {error}. Kontrollera adressen, nätet och "
                       "brandväggen (utgående HTTPS), och ca_file för ett eget certifikat.",
        "clock-ok": "klockan går inom {offset:+.1f} s från tjänstens",
        "clock-off": "klockan går {offset:+.1f} s fel mot tjänsten; enheten avvisar biljetter "
                     "utöver {skew:g} s. Slå på tidssynk: timedatectl set-ntp true.",
        "clock-unknown": "tjänstens svar saknade datum; klockan inte kontrollerad",
        "link-refused": "tjänsten godtar inte kamerans nyckel (stängt med {code}): spärrad "
                        "eller registrerad på annat håll. Be administratören om en ny kod "
                        "och registrera igen.",
        "link-down": "agentlänken {url} misslyckades: {error}. Kontrollera att en proxy "
                     "framför tjänsten släpper igenom WebSocket.",
        "key-match": "tjänstens nyckel kontrollerad: den signerade vår utmaning med den "
                     "fästa nyckeln",
        "key-mismatch": "tjänsten signerar med en annan nyckel än den som fästes vid "
                        "registreringen. Om tjänsten flyttats avsiktligt: registrera igen; "
                        "annars är detta inte er tjänst: avbryt och fråga administratören.",
        "key-unchecked": "länkad, men tjänsten signerade inte vår utmaning, så dess nyckel "
                         "kunde inte kontrolleras: den är äldre än denna agent. Be "
                         "administratören uppgradera tjänsten.",
        "link-skipped": "agentlänken inte provad (se ovan)",
        "stun-ok": "STUN {url} svarar: enheten syns som {mapped}",
        "stun-bad": "STUN {url} misslyckades: {error}. Kontrollera adressen och att "
                    "utgående UDP 3478 är öppen.",
        "turn-ok": "TURN {url} förmedlar för enheten (förmedlad adress {relayed}), med "
                   "testuppgifter från tjänsten; varje titt får egna, inga sparas här",
        "turn-refused": "TURN {url} avvisade tjänstens uppgifter (fel {code}). TURN-hemligheten "
                        "i tjänsten (SUPERVISION_TURN_SECRET) och i TURN-servern "
                        "(static-auth-secret) måste vara samma: fråga administratören.",
        "turn-bad": "TURN {url} misslyckades: {error}. Kontrollera adressen och att utgående "
                    "port {port} (UDP, eller TCP för transport=tcp) är öppen.",
        "turn-none": "tjänsten anger ingen TURN-server: ett hem vars router eller mobilnät "
                     "stoppar direkta anslutningar går inte att titta in i",
        "plan-ok": "har planversion {version}: {count} tillsynstid(er) {times}, "
                   "tidszon {tz}",
        "plan-none": "har ingen plan än: varje titt avvisas tills tjänsten skickar en (det "
                     "gör den när agenten länkar och personen har en plan).",
        "camera-skipped": "kameran inte öppnad (lägg till --camera för att öppna den en gång "
                          "och släppa den)",
        "camera-ok": "kameran {source} öppnades och gav en bild ({what}) på {ms} ms; släppt "
                     "direkt",
        "camera-bad": "kameran {source} misslyckades: {reason}: {detail}. {advice}",
        "path": "videoväg vid visning: {path} ({reason})",
        "advice-camera-credentials": "Ange kamerans användarnamn och lösenord i source.",
        "advice-camera-unreachable": "Kontrollera kamerans adress och att den har ström "
                                     "och är på detta nät.",
        "advice-other": "Kontrollera source i konfigurationen och kamerans inställningar.",
    },
}


@dataclass
class Finding:
    status: str  # OK | FAIL | INFO
    key: str     # a key of STRINGS[lang]
    values: dict[str, object] = field(default_factory=dict)

    def text(self, lang: str) -> str:
        words = STRINGS[lang]
        values = {k: words.get(str(v), v) if k == "advice" else v
                  for k, v in self.values.items()}
        return f"[{LABELS[lang][self.status]}] {words[self.key].format(**values)}"


def language(option: str | None) -> str:
    """--lang, else the locale's language (LANG=sv_SE.UTF-8 -> sv), else English."""
    chosen = (option or os.environ.get("LANG", "") or "en")[:2].lower()
    return chosen if chosen in STRINGS else "en"


def _ssl_context(config: AgentConfig) -> ssl.SSLContext | None:
    if not config.server_url.startswith("https://"):
        return None
    return ssl.create_default_context(cafile=config.ca_file)


def check_key(config: AgentConfig) -> Finding:
    path = config.key_file
    if not path.exists():
        return Finding(FAIL, "key-missing", {"path": path})
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode != 0o600:
        return Finding(FAIL, "key-mode", {"path": path, "mode": f"{mode:04o}"})
    try:
        Identity.load(path)
    except (OSError, ValueError) as exc:
        return Finding(FAIL, "key-bad", {"path": path, "error": type(exc).__name__})
    return Finding(OK, "key-ok", {"path": path})


def check_http(config: AgentConfig) -> list[Finding]:
    """Reachable, and the clock against the HTTP Date header (1 s resolution, so the
    request's midpoint is compared with the header's second + 0.5)."""
    url = config.server_url.rstrip("/") + "/healthz"
    sent = time.time()
    try:
        with urllib.request.urlopen(url, timeout=NET_SECONDS,
                                    context=_ssl_context(config)) as answer:
            date = answer.headers.get("Date")
    except urllib.error.HTTPError as exc:  # it answered: reachable, and it has a date
        date = exc.headers.get("Date")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return [Finding(FAIL, "server-down", {"url": config.server_url, "error": reason})]
    found = [Finding(OK, "server-ok", {"url": config.server_url})]
    if date is None:
        return [*found, Finding(INFO, "clock-unknown")]
    offset = email.utils.parsedate_to_datetime(date).timestamp() + 0.5 - (sent + time.time()) / 2
    status = OK if abs(offset) <= SKEW else FAIL
    return [*found, Finding(status, "clock-ok" if status == OK else "clock-off",
                            {"offset": offset, "skew": SKEW})]


@dataclass
class Linked:
    """What linking told: the service's key check, and the servers it hands a look-in."""

    finding: Finding
    ice_servers: list[dict[str, object]] = field(default_factory=list)
    expires_at: float | None = None


async def check_link(config: AgentConfig, identity: Identity) -> Linked:
    """Link as the agent does, with a nonce of our own that the service signs in its
    welcome (verified with the pinned key, whether or not the camera has a plan); then ask
    for the servers a look-in would get, with a TURN credential valid for a minute."""
    server_key = load_public_key(config.server_public_key)
    ours = new_nonce()
    try:
        async with connect(config.link_url, ssl=_ssl_context(config), open_timeout=NET_SECONDS,
                           max_size=MAX_MESSAGE_BYTES) as ws:
            challenge = decode_message(await asyncio.wait_for(ws.recv(), NET_SECONDS),
                                       SERVICE_TYPES)
            if challenge["type"] != CHALLENGE:
                raise Refusal("garbled", "expected a challenge")
            nonce = str(challenge.get("nonce", ""))
            await ws.send(encode_message(
                AUTH, camera=config.camera_id, version="doctor", nonce=ours,
                signature=identity.sign(link_challenge_message(config.camera_id, nonce))))
            welcome = await _next(ws, WELCOME)
            proof = welcome.get("signature")
            if not isinstance(proof, str):
                return Linked(Finding(FAIL, "key-unchecked"))
            if not verify(server_key, proof, welcome_message(config.camera_id, ours)):
                return Linked(Finding(FAIL, "key-mismatch"))
            await ws.send(encode_message(ICE_PROBE))
            servers = await _next(ws, ICE_SERVERS)
            listed = servers.get("ice_servers")
            expires = servers.get("expires_at")
            return Linked(Finding(OK, "key-match"),
                          [e for e in listed if isinstance(e, dict)]
                          if isinstance(listed, list) else [],
                          float(expires) if isinstance(expires, int | float) else None)
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else None
        if code in (CLOSE_AUTH_FAILED, CLOSE_REVOKED):
            return Linked(Finding(FAIL, "link-refused", {"code": code}))
        return Linked(Finding(FAIL, "link-down", {"url": config.link_url,
                                                  "error": f"closed {code}"}))
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI, Refusal) as exc:
        return Linked(Finding(FAIL, "link-down", {"url": config.link_url,
                                                  "error": str(exc) or type(exc).__name__}))


async def _next(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next message of ``kind`` within NET_SECONDS (a plan or a heartbeat answer may
    come first: the service treats doctor as the camera's agent)."""
    deadline = time.monotonic() + NET_SECONDS
    while (remaining := deadline - time.monotonic()) > 0:
        msg = decode_message(await asyncio.wait_for(ws.recv(), remaining), SERVICE_TYPES)
        if msg["type"] == kind:
            return msg
    raise TimeoutError(f"no {kind} from the service within {NET_SECONDS:g} s")


def _urls(server: dict[str, object]) -> list[str]:
    urls = server.get("urls")
    return [str(u) for u in ([urls] if isinstance(urls, str) else list(urls or []))]  # type: ignore[call-overload]


async def check_ice(config: AgentConfig, linked: Linked) -> list[Finding]:
    """Each STUN server (the device's own and the service's) answers a binding request;
    each TURN server the service names allocates a relay with the test credential."""
    found = []
    stun_urls = [u for server in [*config.ice_servers, *linked.ice_servers]
                 for u in _urls(server) if u.startswith("stun:")]
    for url in dict.fromkeys(stun_urls):
        host, port, _ = _address(url)
        try:
            mapped = await asyncio.wait_for(_binding(host, port), TURN_SECONDS)
            found.append(Finding(OK, "stun-ok", {"url": url, "mapped": mapped}))
        except Exception as exc:  # TimeoutError, OSError, a garbled answer
            found.append(Finding(FAIL, "stun-bad", {
                "url": url, "error": str(exc) or type(exc).__name__}))
    turns = [(u, server) for server in linked.ice_servers for u in _urls(server)
             if u.startswith(("turn:", "turns:"))]
    if linked.finding.status == OK and not turns:
        found.append(Finding(INFO, "turn-none"))
    for url, server in turns:
        found.append(await _turn(url, str(server.get("username", "")),
                                 str(server.get("credential", ""))))
    return found


def _address(url: str) -> tuple[str, int, str]:
    """(host, port, transport) of a stun:/turn:/turns: URL (RFC 7064/7065)."""
    scheme, _, rest = url.partition(":")
    where, _, query = rest.partition("?")
    if where.startswith("["):  # [IPv6]:port
        host, _, port = where[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = where.partition(":")
    transport = dict(p.partition("=")[::2] for p in query.split("&") if p).get(
        "transport", "tcp" if scheme == "turns" else "udp")
    return host, int(port or (5349 if scheme == "turns" else 3478)), transport


async def _turn(url: str, username: str, password: str) -> Finding:
    """A real TURN Allocate with the service's test credential; the relay is released."""
    from aioice import stun
    from aioice import turn as turn_client

    host, port, transport = _address(url)
    try:
        relay, _ = await asyncio.wait_for(turn_client.create_turn_endpoint(
            asyncio.DatagramProtocol, (host, port), username, password,
            transport=transport, ssl=url.startswith("turns:")), TURN_SECONDS)
    except stun.TransactionFailed as exc:
        code = exc.response.attributes.get("ERROR-CODE", (0, ""))[0]
        return Finding(FAIL, "turn-refused", {"url": url, "code": code})
    except Exception as exc:  # TimeoutError, OSError, TransactionTimeout
        return Finding(FAIL, "turn-bad", {"url": url, "port": port,
                                          "error": str(exc) or type(exc).__name__})
    relayed = relay.get_extra_info("sockname")
    relay.close()
    return Finding(OK, "turn-ok", {"url": url, "relayed": f"{relayed[0]}:{relayed[1]}"})


async def _binding(host: str, port: int) -> str:
    """One STUN binding request over UDP: the address the server saw."""
    from aioice import stun

    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            if not answer.done():
                answer.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=(host, port))
    try:
        request = stun.Message(message_method=stun.Method.BINDING,
                               message_class=stun.Class.REQUEST)
        transport.sendto(bytes(request))
        reply = stun.parse_message(await answer)
        mapped = reply.attributes.get("XOR-MAPPED-ADDRESS") or reply.attributes.get(
            "MAPPED-ADDRESS")
        if mapped is None:
            raise ValueError("no mapped address in the answer")
        return f"{mapped[0]}:{mapped[1]}"
    finally:
        transport.close()


def check_plan(config: AgentConfig) -> Finding:
    store = PlanStore(config.camera_id, load_public_key(config.server_public_key),
                      config.plan_file)
    if store.plan is None:
        return Finding(INFO, "plan-none")
    times = ", ".join(c.at.strftime("%H:%M") for c in store.plan.check_times)
    return Finding(OK, "plan-ok", {"version": store.version, "tz": store.plan.timezone,
                                   "count": len(store.plan.check_times), "times": times})


async def check_camera(config: AgentConfig) -> Finding:
    source = rtsp.redact(config.source)
    path = planned(config)
    capture = Capture(config.source, width=config.width, height=config.height,
                      fps=config.fps, enhance=config.enhance, masks=config.masks,
                      open_deadline_s=config.open_deadline_seconds,
                      rtsp_transport=config.rtsp_transport,
                      # asked for here too: the installer sees whether the request works
                      keyframe_command=config.keyframe_command,
                      keyframe_timeout_s=config.keyframe_timeout_seconds,
                      passthrough=path.path == "passthrough")
    began = time.monotonic()
    try:
        await capture.open()
        if capture.passthrough:
            data = await capture.read_packet()
            what = f"H.264 keyframe, {len(data)} bytes, passed through"
        else:
            frame = await capture.read()
            codec = f"{capture.camera_codec}, " if capture.camera_codec else ""
            what = f"{codec}{frame.shape[1]}x{frame.shape[0]}"
    except CaptureError as exc:
        advice = f"advice-{exc.reason}" if exc.reason in (
            rtsp.BAD_CREDENTIALS, rtsp.UNREACHABLE) else "advice-other"
        return Finding(FAIL, "camera-bad", {"source": source, "reason": exc.reason,
                                            "detail": exc.detail, "advice": advice})
    finally:
        await capture.close()
    return Finding(OK, "camera-ok", {"source": source, "what": what,
                                     "ms": round((time.monotonic() - began) * 1000)})


async def run_checks(config_path: Path, camera: bool) -> list[Finding]:
    try:
        config = AgentConfig.load(config_path)
    except (OSError, ValueError) as exc:
        return [Finding(FAIL, "config-bad", {"path": config_path,
                                             "error": str(exc).replace(str(config_path), "")
                                             .strip(": ") or type(exc).__name__})]
    found = [Finding(OK, "config-ok", {"path": config_path, "camera": config.camera_id,
                                       "source": rtsp.redact(config.source)}),
             check_key(config)]
    http = await asyncio.to_thread(check_http, config)
    found += http
    linked = Linked(Finding(INFO, "link-skipped"))
    if found[1].status == OK and http[0].status == OK:
        linked = await check_link(config, Identity.load(config.key_file))
        found.append(linked.finding)
    found += await check_ice(config, linked)
    found.append(check_plan(config))
    if camera:
        found.append(await check_camera(config))
    else:
        found.append(Finding(INFO, "camera-skipped"))
    path = planned(config)
    if describe_source(config.source) == "rtsp":
        found.append(Finding(INFO, "path", {"path": path.path, "reason": path.reason}))
    return found


def main(config_path: Path, camera: bool, lang: str | None) -> int:
    chosen = language(lang)
    found = asyncio.run(run_checks(config_path, camera))
    for finding in found:
        print(finding.text(chosen), flush=True)
    return 1 if any(f.status == FAIL for f in found) else 0
