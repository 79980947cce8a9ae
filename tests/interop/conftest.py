"""Fixtures for interop tests against django-websocket-redis 0.6.0 itself."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import RedisProcess, clean_env

PUBLISH_SCRIPT = Path(__file__).resolve().parent / "ws4redis_publish.py"

RunWs4Redis = Callable[..., Awaitable[list[bytes | None]]]


def text(value: str) -> dict[str, str]:
    """A message handed to ws4redis' ``RedisMessage`` as ``str``."""
    return {"text": value}


def raw(value: bytes) -> dict[str, str]:
    """A message handed to ws4redis' ``RedisMessage`` as ``bytes``."""
    return {"b64": base64.b64encode(value).decode()}


def publish(facility: str, *messages: dict[str, str], **audience: Any) -> dict[str, Any]:
    """A publish action: ``audience`` as ``RedisPublisher`` takes it, plus ``expire``."""
    return {"op": "publish", "facility": facility, "messages": list(messages), **audience}


def fetch(facility: str, audience: str = "broadcast") -> dict[str, Any]:
    """A ``RedisPublisher.fetch_message`` action (the kept last message)."""
    return {"op": "fetch", "facility": facility, "audience": audience}


@pytest.fixture(scope="session", autouse=True)
def _ws4redis_installed() -> None:
    if importlib.util.find_spec("ws4redis") is None:
        pytest.fail("django-websocket-redis missing: pip install -r tests/requirements-interop.txt")


@pytest.fixture
def run_ws4redis(redis_server: RedisProcess) -> RunWs4Redis:
    """``await run_ws4redis(*actions, prefix=..., expire=...)`` in a separate ws4redis process."""

    async def run(
        *actions: dict[str, Any], prefix: str | None, expire: int = 0
    ) -> list[bytes | None]:
        job = {"port": redis_server.port, "prefix": prefix, "expire": expire, "actions": actions}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(PUBLISH_SCRIPT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=clean_env(),
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(json.dumps(job).encode()), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode == 0, f"ws4redis publisher failed:\n{err.decode()}"
        fetched = json.loads(out)["fetched"]
        return [None if item is None else base64.b64decode(item) for item in fetched]

    return run
