"""camera-agent enrol | run | doctor."""

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
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    enrol = sub.add_parser("enrol", aliases=["enroll"], help="bind this device to a camera")
    enrol.add_argument("--server", required=True, help="https://service.example")
    enrol.add_argument("--code", required=True, help="one-time enrolment code from the admin")
    enrol.add_argument("--state-dir", type=Path, default=Path("/var/lib/camera-agent"))
    enrol.add_argument("--source", help="camera: 0, /dev/video0, rtsp://..., a file, synthetic")
    enrol.add_argument("--ca-file", help="CA or service certificate to pin for https/wss")
    run = sub.add_parser("run", help="run the agent")
    run.add_argument("--config", type=Path, default=Path("/var/lib/camera-agent/agent.toml"))
    doctor = sub.add_parser("doctor", help="check this device: config, key, service, "
                            "clock, TURN, plan; the camera only with --camera")
    doctor.add_argument("--config", type=Path,
                        default=Path("/var/lib/camera-agent/agent.toml"))
    doctor.add_argument("--camera", action="store_true",
                        help="open the camera once, take one frame, release it")
    doctor.add_argument("--lang", choices=("sv", "en"), help="default: from LANG")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    logging.getLogger("aiortc").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.WARNING)

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

    if args.command == "doctor":
        from camera_agent.doctor import main as doctor_main
        logging.getLogger().setLevel(logging.ERROR)  # its lines are the output
        return doctor_main(args.config, args.camera, args.lang)

    try:
        config = AgentConfig.load(args.config)
    except (OSError, ValueError) as exc:
        print(f"cannot load the agent config: {exc}", file=sys.stderr)
        return 2
    from camera_agent.agent import Agent
    from schedules.reason import Reason
    try:
        agent = Agent(config)
    except (OSError, ValueError) as exc:
        print(f"cannot start the agent (enrolled?): {exc}", file=sys.stderr)
        return 2

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
            await agent.stop_lookin(Reason("agent-stopping"))

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
