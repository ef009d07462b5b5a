"""Reach a camera wherever its link is: on this node through ``signaling.AgentLinks``, on
another through a call to the node that holds it (``nodes.Nodes.call``).

A look-in, its end, a plan and a revocation are asked of any node; the one holding the
camera's link does the sending and answers with what the agent said. So a look-in started
through a node that does not hold the link plays, "end" and "revoke" stop the picture at
once, and a plan saved anywhere reaches the camera. Media never passes through any node.

When the link moves between the question and the call (the agent redialled another node),
the holder answers "not here" and the call is tried once more at the new holder.
"""

from __future__ import annotations

import logging
from typing import Any

from camera_agent.protocol import CLOSE_REVOKED, Refusal, encode_message
from supervision.nodes import CallFailed, Nodes
from supervision.presence import Presence
from supervision.signaling import AgentLinks, AgentUnavailable

log = logging.getLogger("supervision.relay")

#: how long a call to another node may take beyond the agent's own wait
CALL_MARGIN_SECONDS = 2.0
#: sending one message or cutting a link on another node
QUICK_CALL_SECONDS = 3.0


class Relay:
    def __init__(self, links: AgentLinks, presence: Presence, nodes: Nodes) -> None:
        self.links = links
        self.presence = presence
        self.nodes = nodes
        nodes.serve("lookin", self._lookin_here)
        nodes.serve("send", self._send_here)
        nodes.serve("plan", self._plan_here)
        nodes.serve("cut", self._cut_here)

    def is_online(self, camera_id: str) -> bool:
        """Linked to this node or to another live one."""
        return self.links.is_online(camera_id) or self.presence.online(camera_id)

    def _holder(self, camera_id: str) -> str | None:
        """Another node holding the link, when this one does not."""
        if self.links.is_online(camera_id):
            return None
        node = self.presence.node_of(camera_id)
        return None if node == self.nodes.id else node

    async def _remote(self, camera_id: str, method: str, args: dict[str, Any],
                      timeout: float) -> dict[str, Any] | None:
        """The holder's answer; None when no node holds the link (after one retry if it
        moved meanwhile)."""
        tried: set[str] = set()
        for _ in range(2):
            if self.links.is_online(camera_id):
                return {"here": True}
            node = self._holder(camera_id)
            if node is None or node in tried:
                return None
            tried.add(node)
            try:
                answer = await self.nodes.call(node, method, {"camera": camera_id, **args},
                                               timeout)
            except CallFailed as exc:
                log.warning("camera %s: %s", camera_id, exc)
                return {"failed": True}
            if not answer.get("absent"):
                return answer
        return None

    # --- what any node may ask ----------------------------------------------------

    async def request_lookin(self, camera_id: str, session: str, ticket: str, offer: str,
                             timeout: float, **fields: Any) -> dict[str, Any]:
        """As ``AgentLinks.request_lookin``, wherever the link is: the agent's answer, or
        ``Refusal``, ``AgentUnavailable`` or ``TimeoutError``."""
        if self.links.is_online(camera_id):
            return await self.links.request_lookin(camera_id, session, ticket, offer,
                                                   timeout, **fields)
        answer = await self._remote(camera_id, "lookin", {
            "session": session, "ticket": ticket, "offer": offer, "timeout": timeout,
            "fields": fields}, timeout + CALL_MARGIN_SECONDS)
        if answer is None:
            raise AgentUnavailable(camera_id)
        if answer.get("here"):  # linked here meanwhile
            return await self.links.request_lookin(camera_id, session, ticket, offer,
                                                   timeout, **fields)
        if "reply" in answer:
            return dict(answer["reply"])
        if "refusal" in answer:
            reason, detail = answer["refusal"]
            raise Refusal(str(reason), str(detail))
        if answer.get("timeout") or answer.get("failed"):
            raise TimeoutError(camera_id)
        raise AgentUnavailable(camera_id)

    async def send(self, camera_id: str, msg_type: str, **fields: Any) -> bool:
        """One message to the agent (e.g. ``end``); whether a link took it."""
        if self.links.is_online(camera_id):
            return await self.links.send(camera_id, msg_type, **fields)
        answer = await self._remote(camera_id, "send", {
            "text": encode_message(msg_type, **fields)}, QUICK_CALL_SECONDS)
        if answer is not None and answer.get("here"):
            return await self.links.send(camera_id, msg_type, **fields)
        return bool(answer and answer.get("sent"))

    async def deliver_plan(self, camera_id: str, version: int, timeout: float,
                           **fields: Any) -> bool:
        """As ``AgentLinks.deliver_plan``, wherever the link is."""
        if self.links.is_online(camera_id):
            return await self.links.deliver_plan(camera_id, version, timeout, **fields)
        answer = await self._remote(camera_id, "plan", {
            "version": version, "timeout": timeout, "fields": fields},
            timeout + CALL_MARGIN_SECONDS)
        if answer is not None and answer.get("here"):
            return await self.links.deliver_plan(camera_id, version, timeout, **fields)
        return bool(answer and answer.get("acknowledged"))

    async def cut(self, camera_id: str) -> bool:
        """Close the camera's link (revoked) wherever it is; whether one was open."""
        if await self.links.cut(camera_id, CLOSE_REVOKED, "camera revoked"):
            return True
        answer = await self._remote(camera_id, "cut", {}, QUICK_CALL_SECONDS)
        if answer is not None and answer.get("here"):
            return await self.links.cut(camera_id, CLOSE_REVOKED, "camera revoked")
        return bool(answer and answer.get("cut"))

    # --- what this node does for the others ---------------------------------------

    async def _lookin_here(self, args: dict[str, Any]) -> dict[str, Any]:
        camera_id = str(args["camera"])
        if not self.links.is_online(camera_id):
            return {"absent": True}
        try:
            reply = await self.links.request_lookin(
                camera_id, str(args["session"]), str(args["ticket"]), str(args["offer"]),
                float(args["timeout"]), **dict(args.get("fields") or {}))
        except Refusal as exc:
            return {"refusal": [exc.reason, exc.detail]}
        except AgentUnavailable:
            return {"absent": True}
        except TimeoutError:
            return {"timeout": True}
        return {"reply": reply}

    async def _send_here(self, args: dict[str, Any]) -> dict[str, Any]:
        camera_id = str(args["camera"])
        if not self.links.is_online(camera_id):
            return {"absent": True}
        conn = self.links.connected[camera_id]
        try:
            await conn.send_text(str(args["text"]))
        except Exception:
            return {"sent": False}
        return {"sent": True}

    async def _plan_here(self, args: dict[str, Any]) -> dict[str, Any]:
        camera_id = str(args["camera"])
        if not self.links.is_online(camera_id):
            return {"absent": True}
        ok = await self.links.deliver_plan(camera_id, int(args["version"]),
                                           float(args["timeout"]),
                                           **dict(args.get("fields") or {}))
        return {"acknowledged": ok}

    async def _cut_here(self, args: dict[str, Any]) -> dict[str, Any]:
        camera_id = str(args["camera"])
        if not await self.links.cut(camera_id, CLOSE_REVOKED, "camera revoked"):
            return {"absent": True}
        return {"cut": True}
