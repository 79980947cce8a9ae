"""Playhouse server: ``python server.py [--port N] [--config PATH]``.

Wiring only: settings → :class:`app.runtime.Instance` → run until SIGTERM/SIGINT,
then drain. A configuration or start-up problem prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import signal
import sys
from pathlib import Path
from typing import Any

from app.admin_cli import create_admin, read_password
from app.config import ConfigError, Settings, load_settings
from app.deps import instance_name
from app.errors import PlayhouseError
from app.gc_policy import collect_periodically, defer_full_collections
from app.runtime import Instance

DEFAULT_CONFIG = Path(__file__).resolve().parent / "config.toml"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="server.py",
        description="Playhouse game server. "
        "`server.py create-admin NAME` creates or promotes an admin "
        "(password from a prompt or stdin).",
    )
    parser.add_argument("command", nargs="?", choices=["serve", "create-admin"], default="serve")
    parser.add_argument("name", nargs="?", help="user name for create-admin")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TOML config file")
    parser.add_argument("--port", type=int, help="server.port")
    parser.add_argument("--host", help="server.host")
    parser.add_argument("--redis-url", help="redis.url (empty: in-process broker)")
    parser.add_argument("--instance-id", help="server.instance_id")
    return parser.parse_args(argv)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    pairs = {
        "server.port": args.port,
        "server.host": args.host,
        "redis.url": args.redis_url,
        "server.instance_id": args.instance_id,
    }
    return {key: value for key, value in pairs.items() if value is not None}


def raise_fd_limit() -> None:
    """Allow as many sockets as the hard limit permits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(settings: Settings) -> int:
    instance = Instance(settings)
    try:
        await instance.start()
    except PlayhouseError as error:  # Redis or MongoDB unreachable at start-up
        print(f"playhouse: error: {error}", file=sys.stderr)
        await instance.stop()
        return 2
    except OSError as error:
        print(
            f"playhouse: error: cannot listen on port {settings.server.port}: {error}",
            file=sys.stderr,
        )
        await instance.stop()
        return 2
    collector = None
    if settings.server.gc_full_interval > 0:
        defer_full_collections()
        collector = asyncio.create_task(collect_periodically(settings.server.gc_full_interval))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"Playhouse listening on http://127.0.0.1:{instance.port}/", flush=True)
    await stop.wait()
    logging.getLogger("playhouse").info("draining")
    await instance.drain()
    await instance.stop()
    if collector is not None:
        collector.cancel()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(args.config, overrides=overrides(args))
    except ConfigError as error:
        print(f"playhouse: error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if settings.server.debug else logging.INFO,
        format=f"%(asctime)s {instance_name(settings)} %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "create-admin":
        return admin_command(settings, args.name)
    raise_fd_limit()
    return asyncio.run(serve(settings))


def admin_command(settings: Settings, name: str | None) -> int:
    if not name:
        print("playhouse: error: create-admin needs a user name", file=sys.stderr)
        return 2
    try:
        stored = asyncio.run(create_admin(settings, name, read_password()))
    except PlayhouseError as error:
        print(f"playhouse: error: {error}", file=sys.stderr)
        return 2
    print(f"{stored} is an admin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
