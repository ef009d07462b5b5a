"""camera-agent enrol | run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from camera_agent.config import AgentConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="camera-agent")
    sub = parser.add_subparsers(dest="command", required=True)
    enrol = sub.add_parser("enrol", aliases=["enroll"], help="bind this device to a camera")
    enrol.add_argument("--server", required=True)
    enrol.add_argument("--code", required=True)
    enrol.add_argument("--state-dir", type=Path, default=Path("/var/lib/camera-agent"))
    enrol.add_argument("--source", default="synthetic")
    enrol.add_argument("--ca-file")
    run = sub.add_parser("run", help="run the agent")
    run.add_argument("--config", type=Path, required=True)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    logging.getLogger("aiortc").setLevel(logging.WARNING)

    if args.command in ("enrol", "enroll"):
        from camera_agent.enrol import EnrolmentError
        from camera_agent.enrol import enrol as do_enrol
        try:
            config = do_enrol(args.server, args.code, args.state_dir, args.source, args.ca_file)
        except EnrolmentError as exc:
            print(exc, file=sys.stderr)
            return 2
        print(f"enrolled as camera {config.camera_id}; config {args.state_dir / 'agent.toml'}")
        return 0

    from camera_agent.agent import Agent
    agent = Agent(AgentConfig.load(args.config))

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(agent.run())
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass
        finally:
            if agent.lookin is not None:
                await agent.lookin.stop("agent-stopping")

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
