"""The agent: ties the link, the gate and the look-in together on the device."""

from __future__ import annotations

import asyncio
import logging
import shlex
import time
from collections.abc import Coroutine
from typing import Any

from camera_agent import __version__
from camera_agent.config import AgentConfig
from camera_agent.gate import Gate, PlanStore, Refusal
from camera_agent.health import health
from camera_agent.identity import Identity
from camera_agent.link import Link
from camera_agent.protocol import (
    ANSWER,
    END,
    HEARTBEAT,
    LOOKIN,
    PLAN,
    REFUSED,
    ProtocolError,
    answer_message,
    load_public_key,
    require_str,
)
from camera_agent.stream import LookIn

log = logging.getLogger("camera_agent")


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.identity = Identity.load(config.key_file)
        server_key = load_public_key(config.server_public_key)
        self.plans = PlanStore(config.camera_id, server_key, config.plan_file)
        self.gate = Gate(config.camera_id, server_key, self.plans)
        self.link = Link(config, self.identity, self.handle, version=__version__)
        self.link.on_connect = self._send_heartbeat
        self.lookin: LookIn | None = None
        self.last_result: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Keep a reference so background work is not garbage-collected mid-flight."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        beat = asyncio.create_task(self._heartbeats())
        try:
            await self.link.run()
        finally:
            beat.cancel()
            if self.lookin is not None:
                await self.lookin.stop("agent-stopping")

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            self._send_heartbeat()

    def _send_heartbeat(self) -> None:
        self.link.send(HEARTBEAT, durable=False, health=health(self.config.source,
                                                               self.last_result))

    def emit(self, msg_type: str, fields: dict[str, Any]) -> None:
        self.link.send(msg_type, **fields)
        if msg_type == "camera":
            log.info("camera %s (look-in %s)", fields["state"], fields["session"])
            hook = (self.config.on_lookin_start if fields["state"] == "opened"
                    else self.config.on_lookin_end)
            if hook:
                self._spawn(self._run_hook(hook))
        if msg_type == "lookin_ended":
            self.last_result = fields["reason"]

    async def _run_hook(self, command: str) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(*shlex.split(command))
            await asyncio.wait_for(proc.wait(), 10)
        except (OSError, TimeoutError) as exc:
            log.warning("hook %r failed: %s", command, exc)

    async def handle(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == LOOKIN:
            await self._lookin(msg)
        elif kind == END:
            if self.lookin is not None and msg.get("session") == self.lookin.ticket.session:
                await self.lookin.stop("ended")
        elif kind == PLAN:
            self._plan(msg)

    def _refuse(self, session: str, reason: str, detail: str = "") -> None:
        log.warning("refused look-in %s: %s %s", session, reason, detail)
        self.link.send(REFUSED, session=session, reason=reason, detail=detail)

    def _plan(self, msg: dict[str, Any]) -> None:
        try:
            self.plans.accept(require_str(msg, "plan_json"), require_str(msg, "signature"),
                              msg.get("version"))
            log.info("plan version %s accepted", msg.get("version"))
        except (Refusal, ProtocolError) as exc:
            self._refuse("", getattr(exc, "reason", "plan-invalid"), str(exc))

    async def _lookin(self, msg: dict[str, Any]) -> None:
        try:
            session = require_str(msg, "session", 64)
            token = require_str(msg, "ticket", 4096)
            offer = require_str(msg, "offer")
        except ProtocolError as exc:
            self._refuse(str(msg.get("session", "")), exc.reason, exc.detail)
            return
        if self.lookin is not None and not self.lookin.done.is_set():
            self._refuse(session, "busy", "another look-in is in progress")
            return
        try:
            ticket = self.gate.admit(token)
        except Refusal as exc:
            self._refuse(session, exc.reason, exc.detail)
            return
        if ticket.session != session:
            self.gate.release(ticket)
            self._refuse(session, "session-mismatch", "ticket is for another look-in")
            return
        lookin = LookIn(ticket, self.config, self.emit)
        self.lookin = lookin
        started = time.perf_counter()
        try:
            sdp = await lookin.answer(offer)
        except Exception as exc:  # a bad offer must not leave the camera on
            await lookin.stop("bad-offer")
            self.gate.release(ticket)
            self._refuse(session, "bad-offer", str(exc)[:200])
            return
        log.info("answer for %s in %.0f ms", session, (time.perf_counter() - started) * 1000)
        self.link.send(ANSWER, session=session, sdp=sdp,
                       signature=self.identity.sign(answer_message(session, sdp)))
        self._spawn(self._release_when_done(lookin))

    async def _release_when_done(self, lookin: LookIn) -> None:
        await lookin.done.wait()
        self.gate.release(lookin.ticket)
