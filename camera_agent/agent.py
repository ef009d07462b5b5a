"""The agent: ties the link, the gate and the look-in together on the device.

Every refusal is logged here and reported to the service (kept in the outbox while the
link is down). The look-in hooks run on camera open and release, so an indicator lamp or
a motor that turns the camera away from the bed follows the camera itself, not the
service's idea of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import time
from collections.abc import Coroutine
from typing import Any

from camera_agent import __version__
from camera_agent.config import AgentConfig
from camera_agent.gate import Gate, PlanStore
from camera_agent.health import health
from camera_agent.identity import Identity
from camera_agent.link import Link
from camera_agent.protocol import (
    ANSWER,
    CAMERA,
    END,
    END_DETAILS,
    HEARTBEAT,
    LOOKIN,
    LOOKIN_ENDED,
    PLAN,
    PLAN_ACK,
    REFUSED,
    Refusal,
    answer_message,
    load_public_key,
    require_str,
)
from camera_agent.rtsp import redact
from camera_agent.stream import LookIn, LookInEnded
from camera_agent.video_path import planned
from schedules.reason import Reason

log = logging.getLogger("camera_agent")

HOOK_SECONDS = 10.0


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.identity = Identity.load(config.key_file)
        server_key = load_public_key(config.server_public_key)
        self.plans = PlanStore(config.camera_id, server_key, config.plan_file)
        self.gate = Gate(config.camera_id, server_key, self.plans)
        self.link = Link(config, self.identity, self.handle, version=__version__)
        self.link.on_connect = self._send_heartbeat
        self.link.on_refused = self._refused_by_service
        self.lookin: LookIn | None = None
        self.last_result: Reason | None = None  # how the last look-in ended
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Keep a reference so background work is not garbage-collected mid-flight."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        log.info("camera agent %s for camera %s, source %s, plan version %s", __version__,
                 self.config.camera_id, redact(self.config.source), self.plans.version)
        beat = asyncio.create_task(self._heartbeats())
        try:
            await self.link.run()
        finally:
            beat.cancel()
            await self.stop_lookin(Reason("agent-stopping"))

    async def stop_lookin(self, reason: Reason) -> None:
        if self.lookin is not None:
            await self.lookin.stop(reason)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            self._send_heartbeat()

    def _send_heartbeat(self) -> None:
        active = self.lookin is not None and self.lookin.active
        path = self.lookin.video_path if self.lookin is not None else planned(self.config)
        self.link.send(HEARTBEAT, durable=False, sent_at=time.time(), health=health(
            self.config.source, self.last_result, self.plans.version, active, path,
            self.link.clock_offset))

    def _refused_by_service(self, revoked: bool) -> None:
        """Nobody can end a look-in of a camera the service no longer accepts: end it here."""
        if revoked:
            self._spawn(self.stop_lookin(Reason("revoked")))

    def emit(self, msg_type: str, fields: dict[str, Any]) -> None:
        self.link.send(msg_type, **fields)
        if msg_type == CAMERA:
            log.info("camera %s (look-in %s)", fields["state"], fields["session"])
            opened = fields["state"] == "opened"
            hook = self.config.on_lookin_start if opened else self.config.on_lookin_end
            if hook:
                self._spawn(self._run_hook(hook, "start" if opened else "end",
                                           fields["session"]))
        if msg_type == LOOKIN_ENDED:
            self.last_result = Reason(fields["reason"], fields.get("detail", ""))
            self._send_heartbeat()
            if self.config.after_lookin_command:  # e.g. the PTZ privacy preset; never awaited
                self._spawn(self._run_hook(self.config.after_lookin_command, "after",
                                           fields["session"],
                                           self.config.after_lookin_timeout_seconds))

    async def _run_hook(self, command: str, event: str, session: str,
                        timeout: float = HOOK_SECONDS) -> None:
        env = dict(os.environ, NATTILLSYN_EVENT=event, NATTILLSYN_SESSION=session,
                   NATTILLSYN_CAMERA=self.config.camera_id)
        name = command.split()[0] if command.split() else "?"  # its arguments may hold a password
        try:
            proc = await asyncio.create_subprocess_exec(*shlex.split(command), env=env,
                                                        stdin=asyncio.subprocess.DEVNULL)
        except (OSError, ValueError) as exc:
            log.warning("hook %s (%s) could not start: %s", name, event, exc)
            return
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            log.warning("hook %s (%s) killed after %.0f s", name, event, timeout)
            return
        if code != 0:
            log.warning("hook %s (%s) exited with %s", name, event, code)

    async def handle(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == LOOKIN:
            await self._lookin(msg)
        elif kind == END:
            if self.lookin is not None and msg.get("session") == self.lookin.ticket.session:
                detail = msg.get("detail")  # why the service ends it, a code it may give
                await self.lookin.stop(Reason("ended", detail if detail in END_DETAILS
                                              else ""))
        elif kind == PLAN:
            self._plan(msg)

    def _refuse(self, session: str, reason: str, detail: str = "", **extra: Any) -> None:
        log.warning("refused look-in %s: %s %s", session or "-", reason, detail)
        self.link.send(REFUSED, session=session, reason=reason, detail=detail[:256], **extra)

    def _plan(self, msg: dict[str, Any]) -> None:
        """Verify and adopt a plan, then say so: ``plan_ack {version}``, or ``refused`` with
        the plan's version (the service reports a push only once it is acknowledged)."""
        version = msg.get("version")
        version = version if isinstance(version, int) and not isinstance(version, bool) \
            else None
        try:
            changed = self.plans.accept(require_str(msg, "plan_json"),
                                        require_str(msg, "signature"), version)
        except Refusal as exc:
            log.warning("plan rejected, keeping version %s: %s", self.plans.version, exc)
            self._refuse("", exc.reason, f"plan version {version}: {exc.detail}",
                         version=version)
            return
        log.info("plan version %s accepted%s", self.plans.version,
                 "" if changed else " (unchanged)")
        # answers to this very message: pointless to keep in the outbox for a later link
        self.link.send(PLAN_ACK, durable=False, version=version)
        self._send_heartbeat()  # tells the service at once which plan the device holds

    async def _lookin(self, msg: dict[str, Any]) -> None:
        try:
            session = require_str(msg, "session", 64)
            token = require_str(msg, "ticket", 4096)
            offer = require_str(msg, "offer")
            ice = msg.get("ice_servers") or []
            if not isinstance(ice, list):
                raise Refusal("garbled", "ice_servers must be a list")
            policy = msg.get("ice_transport_policy") or "all"
            if policy not in ("all", "relay"):
                raise Refusal("garbled", "ice_transport_policy must be all or relay")
        except Refusal as exc:
            self._refuse(str(msg.get("session", ""))[:64], exc.reason, exc.detail)
            return
        if self.lookin is not None and self.lookin.active:
            self._refuse(session, "busy", "another look-in is in progress")
            return
        try:
            admission = self.gate.admit(token)
        except Refusal as exc:
            self._refuse(session, exc.reason, exc.detail)
            return
        if admission.ticket.session != session:
            self.gate.release(admission)
            self._refuse(session, "session-mismatch", "ticket is for another look-in")
            return
        started = time.perf_counter()
        try:
            lookin = LookIn(admission, self.config, self.emit, ice_servers=ice,
                            ice_transport_policy=policy,
                            on_done=lambda: self.gate.release(admission))
        except Exception as exc:
            self.gate.release(admission)
            log.exception("look-in could not be set up")
            self._refuse(session, "technical-failure", str(exc)[:200])
            return
        self.lookin = lookin
        try:
            sdp = await lookin.answer(offer)
        except LookInEnded as exc:
            self._refuse(session, exc.reason.code,
                         exc.reason.detail or "the look-in ended before its answer")
            return
        except Exception as exc:  # a bad offer must not leave the camera on
            await lookin.stop(Reason("bad-offer"))
            self._refuse(session, "bad-offer", str(exc)[:200])
            return
        log.info("answer for %s in %.0f ms", session, (time.perf_counter() - started) * 1000)
        self.link.send(ANSWER, durable=False, session=session, sdp=sdp,
                       signature=self.identity.sign(answer_message(session, sdp)))
