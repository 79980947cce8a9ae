"""Starting, pinning, health-checking and stopping the processes a benchmark needs."""

from __future__ import annotations

import contextlib
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]

HOST = "127.0.0.1"
SERVER_CPU = 0
CLIENT_CPU = 1
# CPUs usable at start-up, before the orchestrator pins itself (children inherit the pinning).
STARTUP_CPUS = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


SERVER_PORTS = range(20_000, 32_768)
"""Where servers under test listen: below Linux's ephemeral range (32768-60999), so a port
just picked is never also the local end of a client socket of a previous run (10,000 of
them can linger there, and the server would fail with EADDRINUSE)."""


def free_port() -> int:
    """A currently unused loopback TCP port, outside the ephemeral range when possible."""
    for _ in range(50):
        port = random.choice(SERVER_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def cpu_available(cpu: int) -> bool:
    """Whether ``cpu`` was usable at start-up (affinity is Linux-only)."""
    return STARTUP_CPUS is not None and cpu in STARTUP_CPUS


def raise_nofile_limit() -> None:
    """Raise the soft file-descriptor limit to the hard limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pin_self(cpu: int) -> None:
    """Pin the calling process to ``cpu`` when possible."""
    if cpu_available(cpu):
        os.sched_setaffinity(0, {cpu})


def child_setup(cpu: int) -> Callable[[], None]:
    """A ``preexec_fn`` pinning the child (and all its future threads) and raising its limits."""

    def setup() -> None:
        raise_nofile_limit()
        pin_self(cpu)

    return setup


def start(
    cmd: Sequence[str],
    log: Path,
    cpu: int,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` pinned to ``cpu``, in a new process group, output going to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            preexec_fn=child_setup(cpu),  # the parent has no threads
            start_new_session=True,  # its own group: stop() can reap its children too
        )


def start_unpinned(
    cmd: Sequence[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` on every CPU (e.g. a server whose thread pool should use them all)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            preexec_fn=raise_nofile_limit,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Terminate a child we started (SIGTERM, SIGKILL after ``grace`` s), then kill whatever
    is left in the process group it leads (e.g. a database it spawned)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def wait_http_ok(proc: subprocess.Popen[bytes], port: int, path: str, timeout: float) -> None:
    """Poll ``http://127.0.0.1:port/path`` until it answers 200; raise if it never does."""
    deadline = time.monotonic() + timeout
    url = f"http://{HOST}:{port}{path}"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s")


def wait_redis(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    """Poll a Redis server with PING until it answers PONG; raise if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with status {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"redis-server on port {port} did not answer within {timeout:.0f}s")


def machine_busy(seconds: float = 1.0) -> float:
    """Cores busy machine-wide over the next ``seconds`` (steal and iowait excluded)."""

    def busy() -> float:
        t = psutil.cpu_times()
        return float(sum(t) - t.idle - t.iowait - t.steal)

    before, started = busy(), time.monotonic()
    time.sleep(seconds)
    return (busy() - before) / (time.monotonic() - started)


def wait_quiet(threshold: float, max_wait: float) -> float:
    """Wait until other processes use under ``threshold`` cores (at most ``max_wait`` s).

    Returns the last reading; between runs our own processes are idle. ``max_wait`` 0 (quick
    runs): no wait and no reading (-1.0, as ``cluster`` records a run it did not wait for).
    """
    if max_wait <= 0:
        return -1.0
    deadline = time.monotonic() + max_wait
    reading = machine_busy()
    while reading > threshold and time.monotonic() < deadline:
        reading = machine_busy()
    return reading


def tail(log: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass(frozen=True)
class Redis:
    """A throw-away ``redis-server`` started by :func:`redis_server`."""

    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"


@contextlib.contextmanager
def redis_server(logdir: Path) -> Iterator[Redis]:
    """A throw-away ``redis-server`` (no persistence) on a free port, on the client CPU."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found on PATH")
    port = free_port()
    cmd = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    proc = start(cmd, logdir / f"redis-{port}.log", CLIENT_CPU)
    try:
        wait_redis(proc, port, timeout=10)
        yield Redis(port, proc)
    finally:
        stop(proc)
