"""Lean asyncio clients for the lobby and game benchmarks: HTTP/1.1 keep-alive and WebSocket.

Both are written straight on ``asyncio`` streams and protocols (no client library), so that a
thousand sockets and a few thousand messages a second stay well inside one client core:

* :class:`HttpClient` keeps one connection alive and sends one request at a time on it; it
  understands ``Content-Length`` and chunked bodies, and collects ``Set-Cookie`` values.
* :class:`WsClient` does a hand-written upgrade, parses server frames itself (text, close, ping)
  and sends masked text frames with a zero mask key (valid, and free to "mask"). Each text
  payload is handed to ``on_text(payload_bytes, receive_time_ns)``.
* :func:`register_users` signs up accounts in parallel (bcrypt cost 4 on the server) and returns
  each one's session cookie; :func:`api` is one JSON call as a signed-in user.

Every wait has a deadline: a stuck request or handshake raises :class:`ClientError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil  # type: ignore[import-untyped]

from bench import procs
from bench.wsclients import upgrade_request

HOST = "127.0.0.1"
PASSWORD = "correct horse battery staple"
XSRF = "benchxsrftoken"  # any token works: Tornado compares the header with the cookie


class ClientError(RuntimeError):
    """A request, handshake or socket failed or timed out."""


@dataclass
class Account:
    """A signed-in user: name and the cookies that make up its session."""

    username: str
    cookies: dict[str, str] = field(default_factory=dict)

    def cookie_header(self) -> str:
        """The ``Cookie`` header value, with the XSRF cookie."""
        jar = {"_xsrf": XSRF, **self.cookies}
        return "; ".join(f"{name}={value}" for name, value in jar.items())


@dataclass
class Reply:
    """One HTTP response."""

    status: int
    body: bytes
    cookies: dict[str, str]

    def json(self) -> Any:
        """The body parsed as JSON (None when empty or not JSON)."""
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None


class HttpClient:
    """One keep-alive HTTP/1.1 connection; one request at a time (callers take ``lock``)."""

    def __init__(self, port: int, *, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self.lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, self.port), self.timeout
            )
        return self._reader, self._writer

    async def request(
        self, method: str, path: str, *, body: bytes = b"", headers: Sequence[str] = ()
    ) -> Reply:
        """Send one request and read its response; reconnect once if the server had closed."""
        async with self.lock:
            for attempt in range(2):
                try:
                    return await asyncio.wait_for(
                        self._exchange(method, path, body, headers), self.timeout
                    )
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    self.close()
                    if attempt:
                        raise ClientError(f"{method} {path}: {exc!r}") from exc
                except TimeoutError as exc:
                    self.close()
                    raise ClientError(f"{method} {path}: no answer in {self.timeout}s") from exc
        raise AssertionError("unreachable")

    async def _exchange(self, method: str, path: str, body: bytes, headers: Sequence[str]) -> Reply:
        reader, writer = await self._connect()
        head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{self.port}", *headers]
        if body or method == "POST":
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, chunked, close, cookies = 0, False, False, {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.lower() == "close":
                close = True
            elif name == "set-cookie":
                key, _, rest = value.partition("=")
                cookies[key.strip()] = rest.split(";", 1)[0].strip('"')
        if chunked:
            data = bytearray()
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                data += await reader.readexactly(size + 2)
                del data[-2:]
            await reader.readuntil(b"\r\n")
            payload = bytes(data)
        else:
            payload = await reader.readexactly(length) if length else b""
        if close:
            self.close()
        return Reply(status, payload, cookies)

    def close(self) -> None:
        """Drop the connection (the next request opens a new one)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def api(
    http: HttpClient, account: Account | None, method: str, path: str, body: Any = None
) -> Reply:
    """One JSON API call as ``account`` (anonymous for None), with the XSRF header and cookie."""
    headers = [f"X-XSRFToken: {XSRF}"]
    headers.append(f"Cookie: {account.cookie_header() if account else f'_xsrf={XSRF}'}")
    data = b"" if body is None else orjson.dumps(body)
    return await http.request(method, path, body=data, headers=headers)


async def register_users(
    port: int, names: Sequence[str], *, parallel: int = 16, timeout: float = 120.0
) -> list[Account]:
    """Register ``names`` (the server must allow that many registrations from one IP)."""
    queue = list(reversed(names))
    accounts: dict[str, Account] = {}

    async def worker() -> None:
        http = HttpClient(port)
        try:
            while queue:
                name = queue.pop()
                body = {"username": name, "password": PASSWORD}
                reply = await api(http, None, "POST", "/api/register", body)
                if reply.status != 201:
                    raise ClientError(f"register {name}: {reply.status} {reply.body[:200]!r}")
                accounts[name] = Account(name, {k: v for k, v in reply.cookies.items() if v})
        finally:
            http.close()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(parallel))), timeout)
    return [accounts[name] for name in names]


OnText = Callable[[bytes, int], None]


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class WsClient(asyncio.Protocol):
    """A raw WebSocket client connection (see the module docstring)."""

    def __init__(self, on_text: OnText) -> None:
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.opened.add_done_callback(_retrieve)  # a failure nobody awaits any more is no error
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self._head = b""
        self._buf = bytearray()
        self._upgraded = False
        self.request = b""

    @classmethod
    async def connect(
        cls, port: int, path: str, on_text: OnText, *, cookie: str = "", timeout: float = 30.0
    ) -> WsClient:
        """Open ``ws://127.0.0.1:port<path>``; raise :class:`ClientError` unless upgraded."""
        loop = asyncio.get_running_loop()
        client = cls(on_text)
        client.request = upgrade_request(port, cookie, path)
        try:
            await asyncio.wait_for(loop.create_connection(lambda: client, HOST, port), timeout)
            await asyncio.wait_for(asyncio.shield(client.opened), timeout)
        except (OSError, TimeoutError) as exc:
            client.abort()
            raise ClientError(f"websocket {path}: {exc!r}") from exc
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self._upgraded:
            self._head += data
            if b"\r\n\r\n" not in self._head:
                return
            head, _, rest = self._head.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                if not self.opened.done():
                    self.opened.set_exception(ClientError(f"refused: {head[:120]!r}"))
                self.abort()
                return
            self._upgraded = True
            if not self.opened.done():
                self.opened.set_result(None)
            data = rest
        now = time.perf_counter_ns()
        buf = self._buf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            opcode, length, start = buf[pos] & 0x0F, buf[pos + 1] & 0x7F, pos + 2
            if length == 126:
                if end - pos < 4:
                    break
                length, start = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, start = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
            if end < start + length:
                break
            payload = bytes(buf[start : start + length])
            pos = start + length
            if opcode == 1:
                self.on_text(payload, now)
            elif opcode == 9:
                self._send_frame(0x8A, payload)
            elif opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.close_code = code
                self._send_frame(0x88, payload[:2])
                self.abort()
        del buf[:pos]

    def _send_frame(self, first: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = bytes((first, 0x80 | n))
        elif n < 65536:
            head = bytes((first, 0xFE)) + n.to_bytes(2, "big")
        else:
            head = bytes((first, 0xFF)) + n.to_bytes(8, "big")
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head + b"\0\0\0\0" + payload)

    def send_text(self, payload: bytes) -> None:
        """Send one masked (zero key) text frame; silently dropped once closed."""
        self._send_frame(0x81, payload)

    def send_json(self, message: Any) -> None:
        """Send ``message`` as a JSON text frame."""
        self._send_frame(0x81, orjson.dumps(message))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = 1006  # closed without a close frame
        if not self.opened.done():
            self.opened.set_exception(ClientError(f"connection lost before upgrade: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result(None)

    @property
    def is_open(self) -> bool:
        """Upgraded and not closed."""
        return self._upgraded and not self.closed.done()

    def close(self) -> None:
        """Send a normal close frame, then drop the connection."""
        if self.close_code is None:
            self.close_code = 1000
        with contextlib.suppress(Exception):
            self._send_frame(0x88, (1000).to_bytes(2, "big"))
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once."""
        if self.transport is not None:
            self.transport.abort()


async def wait_until(condition: Callable[[], bool], timeout: float, *, poll: float = 0.05) -> bool:
    """Poll ``condition`` until true or ``timeout`` s have passed; returns its last value."""
    for _ in range(max(1, int(timeout / poll))):
        if condition():
            return True
        await asyncio.sleep(poll)
    return condition()


def percentiles_ms(values_ns: list[int]) -> dict[str, float | None]:
    """Nearest-rank p50/p99/p999 and max of nanosecond samples, in milliseconds."""
    if not values_ns:
        return {"p50_ms": None, "p99_ms": None, "p999_ms": None, "max_ms": None}
    ordered = sorted(values_ns)
    n = len(ordered)

    def rank(q: float) -> float:
        return round(ordered[min(n - 1, int(q * n))] / 1e6, 2)

    return {
        "p50_ms": rank(0.50),
        "p99_ms": rank(0.99),
        "p999_ms": rank(0.999),
        "max_ms": round(ordered[-1] / 1e6, 2),
    }


def noisy(row: dict[str, Any]) -> str:
    """The "other CPU" cell: other processes' cores during the step, flagged when noisy."""
    other = float(row.get("other_cpu", 0.0))
    return f"{other:.0%}" + (" (noisy)" if other > NOISY else "")


def fmt(value: Any, spec: str = "") -> str:
    """Table cell: formatted number, or an em dash when missing."""
    return "—" if value is None else format(value, spec)


# --- servers under test and what they cost -------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

LOBBY_ENV = {
    "PLAYHOUSE_MONGODB_DATA_DIR": "memory",  # embedded nx-27017, nothing kept on disk
    "PLAYHOUSE_SECURITY_BCRYPT_ROUNDS": "4",  # setup only: sign-ups are not what is measured
    "PLAYHOUSE_SECURITY_REGISTRATIONS_PER_IP": "100000",
    "PLAYHOUSE_SECURITY_LOGIN_ATTEMPTS_PER_IP": "100000",
    "PLAYHOUSE_SECURITY_LOGIN_ATTEMPTS_PER_USER": "100000",
}
"""Environment of ``server.py`` for the lobby and game scenarios (plus ``PLAYHOUSE_REDIS_URL``)."""


NOISY = 0.3  # cores used by other processes above which a measurement is flagged
MAX_ATTEMPTS = 3  # a step measured while other processes were busy is repeated, at most so often


def log(message: str) -> None:
    """Progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Running:
    """A started server under test and the processes whose cost we report."""

    port: int
    server: psutil.Process
    helpers: dict[str, psutil.Process]  # e.g. "mongo" (nx-27017, the server's child), "redis"
    logfile: Path


@contextmanager
def playhouse(logdir: Path, env: dict[str, str], *, redis: bool = True) -> Iterator[Running]:
    """``server.py`` on the server CPU (its embedded nx-27017 inherits the pinning), with a
    fresh ``redis-server`` when ``redis``; stopped on exit."""
    with contextlib.ExitStack() as stack:
        helpers: dict[str, psutil.Process] = {}
        full_env = {**LOBBY_ENV, **env, "PLAYHOUSE_REDIS_URL": ""}
        if redis:
            redis_server = stack.enter_context(procs.redis_server(logdir))
            url, redis_proc = redis_server.url, redis_server.proc
            full_env["PLAYHOUSE_REDIS_URL"] = url
            helpers["redis"] = psutil.Process(redis_proc.pid)
        port = procs.free_port()
        logfile = logdir / f"playhouse-{port}.log"
        cmd = [sys.executable, "server.py", "--port", str(port)]
        proc = procs.start(cmd, logfile, procs.SERVER_CPU, full_env, ROOT)
        stack.callback(procs.stop, proc)
        try:
            procs.wait_http_ok(proc, port, "/healthz", timeout=30)
        except RuntimeError as exc:
            raise RuntimeError(f"server did not start: {exc}\n{procs.tail(logfile)}") from exc
        server = psutil.Process(proc.pid)
        for child in server.children(recursive=True):
            helpers.setdefault("mongo", child)
            # The embedded nx-27017 inherits the server's CPU; it is a service like Redis,
            # so it goes to the other CPU with Redis and the load generator.
            if procs.cpu_available(procs.CLIENT_CPU):
                with contextlib.suppress(psutil.Error, OSError):
                    for thread in child.threads():  # affinity is per thread on Linux
                        os.sched_setaffinity(thread.id, {procs.CLIENT_CPU})
        yield Running(port, server, helpers, logfile)


@contextmanager
def script_server(name: str, cmd: list[str], logdir: Path) -> Iterator[Running]:
    """A baseline server started from ``cmd`` (which ends with ``--port``) on the server CPU."""
    port = procs.free_port()
    logfile = logdir / f"{name}-{port}.log"
    proc = procs.start([*cmd, str(port)], logfile, procs.SERVER_CPU, None, ROOT)
    try:
        procs.wait_http_ok(proc, port, "/healthz", timeout=20)
        yield Running(port, psutil.Process(proc.pid), {}, logfile)
    finally:
        procs.stop(proc)


def _cpu(proc: psutil.Process) -> float:
    with contextlib.suppress(psutil.Error):
        times = proc.cpu_times()
        return float(times.user + times.system)
    return 0.0


class CpuMeter:
    """CPU share (cores) of the server, its helpers and this client over a window, and RSS.

    ``other_cpu`` is what the rest of the machine used meanwhile (other processes' noise): a
    step with more than :data:`NOISY` of it is flagged in the tables.
    """

    def __init__(self, running: Running) -> None:
        self.running = running
        self.procs = {"server": running.server, **running.helpers}
        self.start()

    def start(self) -> None:
        """Begin a window."""
        self._wall = time.monotonic()
        self._own = _own_cpu()
        self._before = {name: _cpu(p) for name, p in self.procs.items()}
        self._machine = _machine_busy()

    def read(self) -> dict[str, float]:
        """Cores used since :meth:`start` (``<name>_cpu``, ``client_cpu``), server RSS in MB."""
        wall = max(1e-9, time.monotonic() - self._wall)
        out = {
            f"{name}_cpu": round((_cpu(p) - self._before[name]) / wall, 3)
            for name, p in self.procs.items()
        }
        out["client_cpu"] = round((_own_cpu() - self._own) / wall, 3)
        ours = sum(out.values())
        out["other_cpu"] = round(max(0.0, (_machine_busy() - self._machine) / wall - ours), 3)
        with contextlib.suppress(psutil.Error):
            out["server_rss_mb"] = round(self.running.server.memory_info().rss / 2**20, 1)
        return out


async def quiet(meter: CpuMeter, *, max_wait: float) -> None:
    """Wait (without blocking the loop) until other processes use under :data:`NOISY` cores
    over a second, or ``max_wait`` s have passed."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        meter.start()
        await asyncio.sleep(1.0)
        if meter.read()["other_cpu"] <= NOISY:
            return


def _machine_busy() -> float:
    """Machine-wide busy CPU seconds (idle, iowait and steal excluded)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - t.iowait - t.steal)


def _own_cpu() -> float:
    times = os.times()
    return float(times.user + times.system)


def write_results(name: str, quick: bool, report: dict[str, Any]) -> None:
    """``bench/results/<name>[-quick].json`` (a smoke run keeps the full results)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / (f"{name}-quick.json" if quick else f"{name}.json")
    path.write_text(json.dumps(report, indent=2) + "\n")
