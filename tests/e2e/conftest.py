"""Browser fixtures: Debian's chromium through Playwright (sync API), and Playhouse
running as a real ``server.py`` subprocess that tests may stop and restart.

Chromium missing: the browser tests skip locally, but FAIL when ``CI`` is set.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, RedisProcess, clean_env, free_port, server_command

E2E = Path(__file__).resolve().parent
JQUERY = E2E / "node_modules" / "jquery" / "dist" / "jquery.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HEARTBEAT = "--heartbeat--"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(condition: bool, reason: str) -> None:
    """Skip for ``reason`` locally; fail in CI, where a missing tool is a broken setup."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this is an error, not a skip)")
    pytest.skip(reason)


def wait_for(predicate: Callable[[], bool], *, timeout: float = 10.0, what: str) -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless chromium per test module."""
    chromium = shutil.which("chromium")
    require(chromium is not None, "chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page in its own context; uncaught page errors fail the test.

    Tests marked ``bypass_csp`` get Playwright's CSP bypass: they drive third-party
    code (ws4redis' original client) with string predicates our CSP forbids.
    """
    context = browser.new_context(
        bypass_csp=request.node.get_closest_marker("bypass_csp") is not None
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def jquery() -> Path:
    require(JQUERY.is_file(), f"{JQUERY} missing (npm ci --prefix tests/e2e)")
    return JQUERY


class ServerProcess:
    """``server.py`` as a subprocess on a fixed port, restartable on that port."""

    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.port = port
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        assert self.proc is None, "already running"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                server_command("--port", str(self.port), "--host", "127.0.0.1"),
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._healthy, timeout=15, what=f"server.py /healthz on port {self.port}")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server.py exited with {self.proc.returncode}\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, *, timeout: float = 20.0) -> int:
        """SIGTERM (graceful drain) and wait for the exit code."""
        proc, self.proc = self.proc, None
        assert proc is not None, "not running"
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise AssertionError(
                f"server.py did not exit within {timeout}s of SIGTERM\n{self.tail()}"
            ) from None

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


@pytest.fixture
def playhouse(
    redis_server: RedisProcess, tmp_path: Path, mongo_env: dict[str, str]
) -> Iterator[Callable[..., ServerProcess]]:
    """``playhouse(**{"PLAYHOUSE_X": "v"})`` → a started server on Redis, killed at teardown."""
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        environ = clean_env(PLAYHOUSE_REDIS_URL=redis_server.url, **{**mongo_env, **env})
        server = ServerProcess(free_port(), environ, tmp_path / f"server-{len(started)}.log")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.kill()


class FrameLog:
    """Every WebSocket frame a page sends and receives, seen through the DevTools protocol
    (the page's own code is not touched)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.sockets = 0
        self.sent: list[str | bytes] = []
        self.received: list[str | bytes] = []
        page.on("websocket", self._attach)

    def _attach(self, socket: Any) -> None:
        self.sockets += 1
        socket.on("framesent", lambda payload: self.sent.append(payload))
        socket.on("framereceived", lambda payload: self.received.append(payload))

    def wait_for(self, predicate: Callable[[], bool], *, timeout: float = 10.0, what: str) -> None:
        """Like :func:`wait_for`, letting Playwright deliver events meanwhile."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            self.page.wait_for_timeout(20)
