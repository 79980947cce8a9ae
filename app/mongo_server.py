"""The embedded MongoDB-protocol server (``nx-27017``) as a child process.

Used when ``mongodb.url`` is empty: ``make run`` needs no MongoDB installed.
Data lives under ``data_dir``; the child is stopped when the server exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from app.errors import StorageUnavailable

__all__ = ["EmbeddedMongo"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the server dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedMongo:
    """Start, wait for and stop ``nx-27017 --data-dir <dir>`` (``memory`` keeps nothing)."""

    def __init__(self, data_dir: Path | str, *, port: int | None = None) -> None:
        self.data_dir = str(data_dir)
        self.port = port or _free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    async def start(self, *, within: float = 15.0) -> None:
        """Launch the child and wait until it answers ``ping``.

        Raises:
            StorageUnavailable: it did not come up within ``within`` seconds.
        """
        binary = shutil.which("nx-27017") or str(Path(sys.executable).with_name("nx-27017"))
        state = Path("/tmp") if self.data_dir == "memory" else Path(self.data_dir)
        state.mkdir(parents=True, exist_ok=True)
        args = [binary, "--host", "127.0.0.1", "-p", str(self.port)]
        args += ["--db", "memory"] if self.data_dir == "memory" else ["--data-dir", self.data_dir]
        args += ["--pid-file", str(state / f"nx-{self.port}.pid")]
        args += ["--log-file", str(state / f"nx-{self.port}.log")]
        self._proc = subprocess.Popen(  # noqa: ASYNC220 - fork+exec, returns at once
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            self.url, serverSelectionTimeoutMS=250
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        try:
            while True:
                if self._proc.poll() is not None:
                    raise StorageUnavailable(f"nx-27017 exited with code {self._proc.returncode}")
                try:
                    await client.admin.command("ping")
                    return
                except PyMongoError:
                    if loop.time() > deadline:
                        raise StorageUnavailable(
                            f"nx-27017 did not answer on port {self.port} within {within}s"
                        ) from None
                    await asyncio.sleep(0.05)
        finally:
            await client.close()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
