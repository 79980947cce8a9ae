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

from app.config import ConfigError, Settings, load_settings
from app.deps import instance_name
from app.errors import BrokerUnavailable
from app.runtime import Instance

DEFAULT_CONFIG = Path(__file__).resolve().parent / "config.toml"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="server.py", description="Playhouse game server")
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
    except BrokerUnavailable as error:
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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"Playhouse listening on http://127.0.0.1:{instance.port}/", flush=True)
    await stop.wait()
    logging.getLogger("playhouse").info("draining")
    await instance.drain()
    await instance.stop()
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
    raise_fd_limit()
    return asyncio.run(serve(settings))


if __name__ == "__main__":
    sys.exit(main())
