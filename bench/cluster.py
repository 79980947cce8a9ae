"""Many instances behind nginx (``python -m bench cluster``): broadcast scaling, cross-instance
game relay latency, and routed delivery, on ``deploy/cluster.py``'s local cluster.

1. **Broadcast.** N subscribers on ``/ws/bench?subscribe-broadcast`` through nginx; this process
   PUBLISHes 100-byte messages on ``broadcast:bench`` straight to Redis (raw RESP on one socket,
   under the fan-out window of :mod:`bench.loadgen`), so only the instances' fan-out is measured.
   Three setups, interleaved and each freshly started: the bare Tornado baseline behind the same
   nginx configuration (published to over a ``?publish-broadcast`` socket: it has no Redis), a
   1-instance and a 2-instance cluster.
2. **Relay latency.** Connect Four games, one move at a time: the mover sends ``move`` and we
   time until the opponent's socket receives that ``state``. A *cross* game has its two game
   sockets on different instances, a *same* game both on one instance (alternating which);
   moves of the two kinds alternate. Added latency = cross minus same, at p50 and p99.
3. **Routed delivery.** Signed-in users, each with one ``/ws/bench?subscribe-user&subscribe-
   broadcast`` socket on one instance. K messages PUBLISHed on ``user:<name>:bench`` and B on
   ``broadcast:bench``; ``/metrics`` of each instance (``playhouse_ws_messages_out_total``,
   ``playhouse_ws_deliveries_total``) is read directly before and after, and each PUBLISH's
   reply (how many Redis subscriber connections got it) is summed.

CPU pinning (2 cores): the instances (and the baseline) on CPU 0; nginx (master and workers),
Redis, nx-27017 and this process (load generator and clients) on CPU 1. The relay part runs
again with every process allowed on both CPUs. Results: ``bench/results/cluster[-quick].json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil  # type: ignore[import-untyped]
import redis.asyncio as aioredis

from bench import procs
from bench.gameclients import (
    Account,
    ClientError,
    HttpClient,
    WsClient,
    api,
    fmt,
    log,
    percentiles_ms,
    register_users,
    wait_until,
    write_results,
)
from bench.loadgen import (
    FRAME_SIZE,
    PAYLOAD_SIZE,
    BenchError,
    Controller,
    Probe,
    Publisher,
    Receiver,
    open_connections,
    percentile,
    reset,
)
from bench.relay import DRAW
from deploy.cluster import Cluster, render_nginx_conf

ROOT = Path(__file__).resolve().parent.parent

FACILITY = "bench"
BROADCAST = f"broadcast:{FACILITY}"
OUTSTANDING_DELIVERIES = 32_000  # publisher window = max(4, this // N), as in ``fanout``
POLL_PAUSE = 0.001  # load generator sleep after each epoll round (as in ``fanout``)
NOISY_OTHER_CPU = 0.3  # a broadcast run where other processes used more is repeated
TARGET_PER_CORE = 0.8
TARGET_ADDED_P99_MS = 5.0
BASELINE = "tornado-baseline"
ONE, TWO = "playhouse ×1", "playhouse ×2"
PINNED, SPREAD = "pinned", "spread"
PINNINGS = (PINNED, SPREAD)
"""Relay latency twice: instances sharing CPU 0 (as for broadcast), then all on both CPUs."""
SLUGS = {BASELINE: "baseline", ONE: "one", TWO: "two"}  # work directory names
CLUSTER_ENV = {
    "PLAYHOUSE_CHANNELS_PUBLISHABLE": FACILITY,  # open to anonymous subscribe-broadcast
    "PLAYHOUSE_WS4REDIS_HEARTBEAT": "",
    "PLAYHOUSE_WS4REDIS_EXPIRE": "0",
    "PLAYHOUSE_LIMITS_PING_INTERVAL": "0",
    "PLAYHOUSE_SECURITY_BCRYPT_ROUNDS": "4",  # set-up only: sign-ups are not measured
    "PLAYHOUSE_SECURITY_REGISTRATIONS_PER_IP": "100000",
    "PLAYHOUSE_SECURITY_LOGIN_ATTEMPTS_PER_IP": "100000",
    "PLAYHOUSE_SECURITY_LOGIN_ATTEMPTS_PER_USER": "100000",
    "PLAYHOUSE_GAMES_CLOCK_SECONDS": "86400",
    "PLAYHOUSE_GAMES_MOVE_SECONDS": "3600",
}
"""Every instance: §6's fan-out settings (no heartbeat, no ping, no kept message), cheap sign-up."""


@dataclass
class Settings:
    """Knobs that differ between a full and a ``--quick`` run."""

    n: int  # broadcast subscribers
    warmup: float
    duration: float
    repeats: int  # usable broadcast runs per setup
    retries: int  # extra broadcast runs allowed for errored or noisy ones
    quiet_wait: float  # longest wait (s) for a quiet machine before each run (0: don't wait)
    moves: int  # timed moves per relay kind (same, cross)
    users: int  # routed-delivery users (half on each instance)
    messages: int  # user-targeted messages K (and broadcasts B = K // 10)


def settings(quick: bool) -> Settings:
    """Full: N=1,000, 2 s warm-up + 5 s windows, 1 usable run per setup (up to 2 retries for
    errored or noisy ones, after up to 20 s waiting for a quiet machine), 504 moves per kind and
    pinning, K=1,000; quick: N=200, 0.2 s + 0.5 s windows, 1 run each, no retry, no wait,
    20 moves, K=40."""
    if quick:
        return Settings(200, 0.2, 0.5, 1, 0, 0.0, moves=20, users=4, messages=40)
    return Settings(1000, 2.0, 5.0, 1, 2, 20.0, moves=504, users=20, messages=1000)


# --- processes, pinning and CPU accounting ---------------------------------------------------


def pin_tree(pid: int, cpus: set[int], *, children: bool = True) -> None:
    """Pin every thread of ``pid`` (and of its descendants) to ``cpus`` (those that exist)."""
    cpus = {cpu for cpu in cpus if procs.cpu_available(cpu)}
    if not cpus:
        return
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for proc in [root, *(root.children(recursive=True) if children else ())]:
            with contextlib.suppress(psutil.Error, OSError):
                for thread in proc.threads():
                    with contextlib.suppress(OSError):
                        os.sched_setaffinity(thread.id, cpus)


def classify_children() -> dict[str, list[psutil.Process]]:
    """Our child processes by role: ``instances``, ``nginx``, ``redis``, ``mongo``, ``baseline``."""
    groups: dict[str, list[psutil.Process]] = {}
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            line = " ".join(proc.cmdline())
            if "server.py" in line:
                role = "instances"
            elif "baseline_tornado" in line:
                role = "baseline"
            elif "nginx" in line:
                role = "nginx"
            elif "redis-server" in line:
                role = "redis"
            elif "nx-27017" in line:
                role = "mongo"
            else:
                continue
            groups.setdefault(role, []).append(proc)
    return groups


def pin_cluster(*, spread: bool = False) -> dict[str, list[psutil.Process]]:
    """Instances and the baseline on the server CPU, the rest (and us) on the client CPU;
    with ``spread``, everything on every CPU (the kernel places each thread)."""
    groups = classify_children()
    every = set(procs.STARTUP_CPUS or ())
    for role, members in groups.items():
        cpu = procs.SERVER_CPU if role in ("instances", "baseline") else procs.CLIENT_CPU
        for proc in members:
            pin_tree(proc.pid, every if spread else {cpu})
    pin_tree(os.getpid(), every if spread else {procs.CLIENT_CPU}, children=False)
    return groups


def affinities(groups: dict[str, list[psutil.Process]]) -> dict[str, list[int]]:
    """The CPUs each role's threads may run on (union), to record that the pinning held."""
    out: dict[str, set[int]] = {"client": set(os.sched_getaffinity(0))}
    for role, members in groups.items():
        for proc in members:
            with contextlib.suppress(psutil.Error, OSError):
                for thread in proc.threads():
                    out.setdefault(role, set()).update(os.sched_getaffinity(thread.id))
    return {role: sorted(cpus) for role, cpus in out.items()}


def _cpu(proc: psutil.Process) -> float:
    with contextlib.suppress(psutil.Error):
        times = proc.cpu_times()
        return float(times.user + times.system)
    return 0.0


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - t.iowait - t.steal)


class CpuMeter:
    """Cores used per role (and by this process) over a window, and by everything else;
    ``other_top`` names the busiest other processes (the noise, when there is some)."""

    def __init__(self, groups: dict[str, list[psutil.Process]]) -> None:
        self.groups = groups
        self.ours = {p.pid for members in groups.values() for p in members} | {os.getpid()}
        self.start()

    def _sample(self) -> dict[str, float]:
        out = {role: sum(map(_cpu, members)) for role, members in self.groups.items()}
        times = os.times()
        out["client"] = times.user + times.system
        return out

    def _others(self) -> dict[int, tuple[str, float]]:
        out = {}
        for proc in psutil.process_iter(["name", "cpu_times"]):
            times = proc.info["cpu_times"]
            if proc.pid not in self.ours and times is not None:
                out[proc.pid] = (proc.info["name"] or "?", times.user + times.system)
        return out

    def start(self) -> None:
        """Begin a window."""
        self._t, self._before, self._machine = time.monotonic(), self._sample(), _machine_busy()
        self._others_before = self._others()

    def read(self) -> dict[str, Any]:
        """``<role>_cpu`` in cores since :meth:`start`, plus ``other_cpu`` and ``other_top``."""
        wall = max(1e-9, time.monotonic() - self._t)
        after = self._sample()
        out: dict[str, Any] = {
            f"{k}_cpu": round((after[k] - self._before[k]) / wall, 3) for k in after
        }
        other = (_machine_busy() - self._machine) / wall - sum(out.values())
        out["other_cpu"] = round(max(0.0, other), 3)
        others = self._others()
        used = {
            f"{name}[{pid}]": round((t - self._others_before.get(pid, (name, 0.0))[1]) / wall, 2)
            for pid, (name, t) in others.items()
        }
        out["other_top"] = dict(sorted(used.items(), key=lambda kv: -kv[1])[:4])
        out["cpus"] = affinities(self.groups)
        return out


@contextmanager
def cluster(size: int, workdir: Path) -> Iterator[Cluster]:
    """A started ``deploy.cluster.Cluster`` of ``size`` instances, pinned; stopped on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    with Cluster(size, workdir=workdir, env=CLUSTER_ENV) as running:
        pin_cluster()
        yield running


@contextmanager
def baseline_behind_nginx(workdir: Path) -> Iterator[int]:
    """``bench/baseline_tornado.py`` behind nginx (``deploy/nginx.conf``); yields nginx's port."""
    workdir.mkdir(parents=True, exist_ok=True)
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port, listen = procs.free_port(), procs.free_port()
    cmd = [sys.executable, str(ROOT / "bench" / "baseline_tornado.py"), "--port", str(port)]
    server = procs.start(cmd, workdir / "baseline.log", procs.SERVER_CPU, None, ROOT)
    nginx: subprocess.Popen[bytes] | None = None
    try:
        procs.wait_http_ok(server, port, "/healthz", timeout=20)
        conf = workdir / "nginx.conf"
        conf.write_text(
            render_nginx_conf(
                listen=listen, upstreams=[port], prefix=workdir, static=ROOT / "static"
            )
        )
        nginx_cmd = [binary, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "err.log")]
        nginx = procs.start_unpinned(nginx_cmd, workdir / "nginx.out")
        procs.wait_http_ok(nginx, listen, "/healthz", timeout=15)
        pin_cluster()
        yield listen
    finally:
        if nginx is not None:
            procs.stop(nginx)
        procs.stop(server)


# --- 1. broadcast ------------------------------------------------------------------------------


class RedisPublisher(Publisher):
    """:class:`bench.loadgen.Publisher` that PUBLISHes to Redis (RESP) instead of a WebSocket.

    Replies (receiving subscriber connections per message) are read without blocking.
    """

    def __init__(
        self, sock: socket.socket, ctrl: Controller, window: int, stall: float, channel: str
    ) -> None:
        super().__init__(sock, ctrl, window, stall)
        name = channel.encode()
        self.head = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n" % (len(name), name, PAYLOAD_SIZE)
        self.pending = bytearray()
        self.receivers: dict[int, int] = {}  # receiving connections -> messages

    def frame(self) -> bytes:
        """One PUBLISH of the same 100-byte payload ``bench.loadgen`` probes parse."""
        text = f"{self.sent:010d}:{time.perf_counter_ns():019d}:".encode()
        return self.head + text.ljust(PAYLOAD_SIZE, b"x") + b"\r\n"

    def drain(self) -> None:
        """Read whatever replies arrived (``:<count>\\r\\n``)."""
        while True:
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                raise BenchError("redis closed the publisher connection")
            self.pending += data
            *lines, rest = self.pending.split(b"\r\n")
            self.pending = bytearray(rest)
            for line in lines:
                if not line.startswith(b":"):
                    raise BenchError(f"unexpected PUBLISH reply {bytes(line[:80])!r}")
                count = int(line[1:])
                self.receivers[count] = self.receivers.get(count, 0) + 1

    def pump(self, now: float) -> None:
        """Read replies, then send what the window allows."""
        self.drain()
        super().pump(now)


def broadcast_once(
    port: int,
    redis_port: int | None,
    n: int,
    cfg: Settings,
    meter: CpuMeter,
    connected: Callable[[], dict[str, float]] = dict,
) -> dict[str, Any]:
    """N subscribers through nginx on ``port``; saturated fan-out for ``cfg.duration`` s.

    Publishes via Redis on ``redis_port``, or over a ``?publish-broadcast`` socket when None.
    ``connected()`` is recorded once every subscriber is connected (e.g. per-instance counts).
    """
    window = max(4, OUTSTANDING_DELIVERIES // n)
    started = time.monotonic()
    conns = open_connections(port, "subscribe-broadcast", n, timeout=20.0)
    connect_s = time.monotonic() - started
    probe_fds = [sock.fileno() for sock, _ in conns[50::100]]
    ctrl = Controller(nprobes=len(probe_fds))
    receiver = Receiver(conns, {fd: Probe(ctrl) for fd in probe_fds})
    pub_sock: socket.socket | None = None
    try:
        receiver.run(0.5)  # let the instances' SUBSCRIBEs reach Redis
        spread = connected()
        if redis_port is None:
            (pub_sock, _), *_ = open_connections(port, "publish-broadcast", 1, timeout=10.0)
            pub_sock.settimeout(10.0)
            publisher: Publisher = Publisher(pub_sock, ctrl, window, 10.0)
        else:
            pub_sock = socket.create_connection((procs.HOST, redis_port), timeout=10.0)
            pub_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pub_sock.settimeout(None)  # with a timeout, recv(MSG_DONTWAIT) would poll and wait
            publisher = RedisPublisher(pub_sock, ctrl, window, 10.0, BROADCAST)
        receiver.run(cfg.warmup, publisher, POLL_PAUSE)
        b0, s0 = receiver.total, publisher.sent
        meter.start()
        ctrl.recording = True
        t0 = time.monotonic()
        receiver.run(cfg.duration, publisher, POLL_PAUSE)
        elapsed = time.monotonic() - t0
        ctrl.recording = False
        cpu = meter.read()
        b1, s1 = receiver.total, publisher.sent
        expected = publisher.sent * n * FRAME_SIZE
        for _ in range(50):
            if receiver.total >= expected:
                break
            receiver.run(0.1)
        if isinstance(publisher, RedisPublisher):
            time.sleep(0.1)
            publisher.drain()
    finally:
        if pub_sock is not None:
            reset(pub_sock)
        receiver.close()
    result: dict[str, Any] = {
        "n": n,
        "window": window,
        "connect_s": round(connect_s, 2),
        "deliveries_per_s": round((b1 - b0) / FRAME_SIZE / elapsed),
        "messages_per_s": round((s1 - s0) / elapsed, 1),
        "p50_ms": round(percentile(ctrl.latencies_ns, 0.50), 2),
        "p99_ms": round(percentile(ctrl.latencies_ns, 0.99), 2),
        "messages_sent": publisher.sent,
        "missing_deliveries": max(0, (expected - receiver.total) // FRAME_SIZE),
        "unexpected_frames": ctrl.unexpected_frames,
        "closed_by_server": receiver.closed,
        "connections": spread,
        **cpu,
    }
    if isinstance(publisher, RedisPublisher):
        result["publish_receivers"] = {str(k): v for k, v in sorted(publisher.receivers.items())}
    return result


def scrape(url: str) -> dict[str, float]:
    """``/metrics`` of one instance, as {sample name: value} (unlabelled samples only)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def broadcast_run(setup: str, cfg: Settings, workdir: Path) -> dict[str, Any]:
    """One fresh broadcast run of ``setup`` (baseline, 1 or 2 instances)."""
    try:
        if setup == BASELINE:
            with baseline_behind_nginx(workdir) as port:
                meter = CpuMeter(classify_children())
                return broadcast_once(port, None, cfg.n, cfg, meter)
        with cluster(1 if setup == ONE else 2, workdir) as running:
            meter = CpuMeter(classify_children())
            result = broadcast_once(
                running.nginx_port,
                running.redis_port,
                cfg.n,
                cfg,
                meter,
                lambda: {
                    i.name: scrape(i.url).get("playhouse_ws_connections", 0.0)
                    for i in running.instances
                },
            )
            result["instances_out"] = {
                i.name: scrape(i.url).get("playhouse_ws_messages_out_total", 0.0)
                for i in running.instances
            }
            return result
    except (BenchError, OSError, RuntimeError, TimeoutError) as exc:
        return {"n": cfg.n, "error": repr(exc)}


def usable(run: dict[str, Any]) -> bool:
    """A run without error, measured while other processes left the machine quiet."""
    return "error" not in run and run.get("other_cpu", 0.0) <= NOISY_OTHER_CPU


def broadcast(cfg: Settings, workdir: Path) -> list[dict[str, Any]]:
    """Every setup ``cfg.repeats`` times, interleaved; the median run of each, with all runs."""
    setups = [BASELINE, ONE, TWO]
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in setups}
    for attempt in range(cfg.repeats + cfg.retries):
        for setup in setups:
            if sum(map(usable, runs[setup])) >= cfg.repeats:
                continue
            busy = (
                procs.wait_quiet(NOISY_OTHER_CPU, max_wait=cfg.quiet_wait) if cfg.quiet_wait else -1
            )
            run = broadcast_run(setup, cfg, workdir / f"{SLUGS[setup]}-{attempt}")
            run["machine_busy_before"] = round(busy, 2)
            log(f"cluster broadcast {setup} run {attempt + 1}: {run}")
            runs[setup].append(run)
    rows: list[dict[str, Any]] = []
    for setup in setups:
        good = sorted(
            [r for r in runs[setup] if usable(r)] or [r for r in runs[setup] if "error" not in r],
            key=lambda r: r["deliveries_per_s"],
        )
        if not good:
            rows.append({"setup": setup, "error": runs[setup][-1].get("error"), "runs": []})
            continue
        median = good[(len(good) - 1) // 2]
        spread = [r["deliveries_per_s"] for r in good]
        rows.append({"setup": setup, **median, "spread": spread, "runs": runs[setup]})
    base = next((r.get("deliveries_per_s") for r in rows if r["setup"] == BASELINE), None)
    for row in rows:
        server_cpu = row.get("instances_cpu", row.get("baseline_cpu"))
        row["server_cpu"] = server_cpu
        rate = row.get("deliveries_per_s")
        row["per_server_core"] = round(rate / server_cpu) if rate and server_cpu else None
        row["vs_baseline"] = round(rate / base, 2) if rate and base else None
    return rows


# --- 2. relay latency --------------------------------------------------------------------------


class Seat:
    """One player's game socket: futures for the ``ack`` and ``state`` we wait for."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.socket: WsClient | None = None
        self.resumed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.to_move: list[str] = []
        self.waiting: dict[tuple[str, int], asyncio.Future[int]] = {}
        self.errors: list[str] = []

    def expect(self, kind: str, seq: int) -> asyncio.Future[int]:
        """A future for the receive time (ns) of the next ``kind`` message with ``seq``."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting[(kind, seq)] = future
        return future

    def on_text(self, payload: bytes, now: int) -> None:
        """Resolve what waits for this message."""
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "resumed" and not self.resumed.done():
            self.resumed.set_result(None)
        elif kind == "state" and isinstance(message.get("to_move"), list):
            self.to_move = message["to_move"]
        elif kind == "error":
            self.errors.append(str(message.get("code")))
        if kind in ("state", "ack") and not message.get("replay"):
            future = self.waiting.pop((kind, message.get("seq", -1)), None)
            if future is not None and not future.done():
                future.set_result(now)


class Duel:
    """One game between two players whose sockets are on given instance ports."""

    def __init__(self, game_id: str, seats: tuple[Seat, Seat]) -> None:
        self.id = game_id
        self.seats = seats
        self.seq = 0
        self.first = 0  # index of the seat that moves at even positions

    @classmethod
    async def start(
        cls, accounts: tuple[Account, Account], ports: tuple[int, int], http: HttpClient
    ) -> Duel:
        """Challenge, accept, open both game sockets on ``ports`` and resume."""
        a, b = accounts
        for _attempt in range(200):
            reply = await api(
                http, a, "POST", "/api/challenges", {"to": b.username, "game": "connect4"}
            )
            if reply.status == 201:
                break
            if reply.status != 409:
                raise ClientError(f"challenge: {reply.status} {reply.body[:200]!r}")
            await asyncio.sleep(0.02)  # the last game's end is still reaching presence
        else:
            raise ClientError(f"challenge: still {reply.status} {reply.body[:200]!r}")
        reply = await api(http, b, "POST", f"/api/challenges/{reply.json()['id']}/accept")
        if reply.status != 200:
            raise ClientError(f"accept: {reply.status} {reply.body[:200]!r}")
        game_id = str(reply.json()["game_id"])
        seats = (Seat(a), Seat(b))
        for seat, port in zip(seats, ports, strict=True):
            seat.socket = await WsClient.connect(
                port,
                f"/ws/{game_id}?subscribe-user",
                seat.on_text,
                cookie=seat.account.cookie_header(),
            )
            seat.socket.send_json({"type": "resume", "since": 0, "chat_since": 0})
        async with asyncio.timeout(10):
            await asyncio.gather(*(seat.resumed for seat in seats))
        duel = cls(game_id, seats)
        duel.first = 1 if b.username in seats[0].to_move else 0
        return duel

    @property
    def over(self) -> bool:
        return self.seq >= len(DRAW)

    async def move(self) -> int:
        """Play the next move of the drawn line; the opponent's receive time minus send time."""
        seq = self.seq
        mover = self.seats[(self.first + seq) % 2]
        other = self.seats[1 - (self.first + seq) % 2]
        assert mover.socket is not None
        ack, state = mover.expect("ack", seq + 1), other.expect("state", seq + 1)
        sent = time.perf_counter_ns()
        mover.socket.send_json(
            {"type": "move", "seq": seq, "move": {"column": DRAW[seq]}, "id": seq + 1}
        )
        try:
            async with asyncio.timeout(10):
                received = await state
                await ack
        except TimeoutError as exc:
            errors = mover.errors + other.errors
            raise ClientError(f"game {self.id} move {seq}: no answer ({errors})") from exc
        self.seq = seq + 1
        return received - sent

    def close(self) -> None:
        for seat in self.seats:
            if seat.socket is not None:
                seat.socket.close()


async def relay_latency(running: Cluster, cfg: Settings, tag: str) -> dict[str, Any]:
    """Alternate moves of a cross-instance and a same-instance game; latencies per kind.

    ``tag`` prefixes the four fresh players' names.
    """
    p1, p2 = (i.port for i in running.instances[:2])
    names = [f"{tag}{name}" for name in ("xalice", "xbob", "scarol", "sdave")]
    accounts = await register_users(p1, names, parallel=4)
    alice, bob, carol, dave = accounts
    # Presence: a challenge needs its target online; each keeps a notifications socket.
    keep = [
        await WsClient.connect(
            port,
            "/ws/notifications?subscribe-broadcast",
            lambda _p, _n: None,
            cookie=a.cookie_header(),
        )
        for a, port in zip(accounts, (p1, p2, p1, p2), strict=True)
    ]
    http = HttpClient(p1)
    samples: dict[str, list[int]] = {"same": [], "cross": []}
    games = {"same": 0, "cross": 0}
    duels: dict[str, Duel | None] = {"same": None, "cross": None}

    async def next_move(kind: str) -> None:
        duel = duels[kind]
        if duel is None or duel.over:
            if duel is not None:
                duel.close()
            if kind == "cross":
                duel = await Duel.start((alice, bob), (p1, p2), http)
            else:  # alternate the instance that holds both sockets
                port = (p1, p2)[games[kind] % 2]
                duel = await Duel.start((carol, dave), (port, port), http)
            games[kind] += 1
            duels[kind] = duel
        samples[kind].append(await duel.move())

    try:
        while min(len(s) for s in samples.values()) < cfg.moves:
            for kind in ("same", "cross"):
                await next_move(kind)
    finally:
        for duel in duels.values():
            if duel is not None:
                duel.close()
        for sock in keep:
            sock.close()
        http.close()
    out: dict[str, Any] = {}
    for kind, values in samples.items():
        out[kind] = {"moves": len(values), "games": games[kind], **percentiles_ms(values)}
    for q in ("p50_ms", "p99_ms"):
        cross, same = out["cross"][q], out["same"][q]
        out[f"added_{q}"] = (
            round(cross - same, 2) if cross is not None and same is not None else None
        )
    out["mean_ms"] = {k: round(statistics.fmean(v) / 1e6, 2) for k, v in samples.items() if v}
    out["samples_ms"] = {k: [round(x / 1e6, 2) for x in v] for k, v in samples.items()}
    return out


# --- 3. routed delivery ------------------------------------------------------------------------


async def routed_delivery(running: Cluster, cfg: Settings) -> dict[str, Any]:
    """K user messages and B broadcasts; per-instance counter deltas and PUBLISH receivers."""
    instances = running.instances[:2]
    names = [f"route{i:03d}" for i in range(cfg.users)]
    accounts = await register_users(instances[0].port, names, parallel=8)
    home = {a.username: instances[i % 2] for i, a in enumerate(accounts)}
    received: dict[str, int] = dict.fromkeys(names, 0)

    def counter(name: str) -> Any:
        def on_text(_payload: bytes, _now: int) -> None:
            received[name] += 1

        return on_text

    path = f"/ws/{FACILITY}?subscribe-user&subscribe-broadcast"
    sockets = [
        await WsClient.connect(
            home[a.username].port, path, counter(a.username), cookie=a.cookie_header()
        )
        for a in accounts
    ]
    redis = aioredis.Redis.from_url(running.redis_url)
    try:
        await asyncio.sleep(0.5)  # subscriptions reach Redis
        numsub = await redis.pubsub_numsub(*(f"user:{n}:{FACILITY}" for n in names), BROADCAST)
        metrics = ("playhouse_ws_messages_out_total", "playhouse_ws_deliveries_total")
        before = {i.name: scrape(i.url) for i in instances}
        user_targets = [names[k % len(names)] for k in range(cfg.messages)]
        broadcasts = max(1, cfg.messages // 10)
        async with redis.pipeline(transaction=False) as pipe:
            for k, name in enumerate(user_targets):
                pipe.publish(f"user:{name}:{FACILITY}", f"routed {k}")
            user_receivers = await pipe.execute()
        expected = dict.fromkeys(names, 0)
        for name in user_targets:
            expected[name] += 1
        await wait_until(lambda: received == expected, timeout=10)
        user_received = dict(received)
        mid = {i.name: scrape(i.url) for i in instances}
        async with redis.pipeline(transaction=False) as pipe:
            for k in range(broadcasts):
                pipe.publish(BROADCAST, f"broadcast {k}")
            broadcast_receivers = await pipe.execute()
        target = {n: expected[n] + broadcasts for n in names}
        await wait_until(lambda: received == target, timeout=10)
        after = {i.name: scrape(i.url) for i in instances}
    finally:
        for sock in sockets:
            sock.close()
        await redis.aclose()
    owned = {i.name: sum(expected[n] for n in names if home[n] is i) for i in instances}
    users_on = {i.name: sum(1 for n in names if home[n] is i) for i in instances}
    per_instance = {}
    for i in instances:
        per_instance[i.name] = {
            "users": users_on[i.name],
            "user_messages_for_its_users": owned[i.name],
            "user_messages_out": mid[i.name][metrics[0]] - before[i.name][metrics[0]],
            "user_deliveries": mid[i.name][metrics[1]] - before[i.name][metrics[1]],
            "broadcast_messages_out": after[i.name][metrics[0]] - mid[i.name][metrics[0]],
            "broadcast_deliveries": after[i.name][metrics[1]] - mid[i.name][metrics[1]],
        }
    return {
        "users": cfg.users,
        "user_messages": cfg.messages,
        "broadcasts": broadcasts,
        "numsub": {str(k.decode() if isinstance(k, bytes) else k): v for k, v in numsub},
        "user_publish_receivers_total": sum(user_receivers),
        "user_publish_receivers_max": max(user_receivers),
        "broadcast_publish_receivers": sorted(set(broadcast_receivers)),
        "user_messages_received": sum(user_received.values()),
        "user_messages_missing": sum(expected.values()) - sum(user_received.values()),
        "misrouted_to_user": sum(max(0, user_received[n] - expected[n]) for n in names),
        "broadcast_frames_received": sum(received.values()) - sum(user_received.values()),
        "instances": per_instance,
    }


# --- orchestration and tables ------------------------------------------------------------------


def cluster_scenario(quick: bool) -> str:
    """Run all three parts; write ``bench/results/cluster[-quick].json``; return the tables."""
    cfg = settings(quick)
    procs.raise_nofile_limit()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="playhouse-bench-cluster-") as tmp:
        workdir = Path(tmp)
        rows = broadcast(cfg, workdir)
        with cluster(2, workdir / "routing") as running:
            routing = asyncio.run(routed_delivery(running, cfg))
            log(f"cluster routing: {routing}")
            latency = {}
            for pinning in PINNINGS:
                pin_cluster(spread=pinning == SPREAD)
                if cfg.quiet_wait:
                    procs.wait_quiet(NOISY_OTHER_CPU, max_wait=cfg.quiet_wait)
                latency[pinning] = asyncio.run(relay_latency(running, cfg, pinning[0]))
                log(f"cluster relay ({pinning}): {latency[pinning]}")
    report = {
        "scenario": "cluster",
        "quick": quick,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "seconds": round(time.monotonic() - started, 1),
        "settings": cfg.__dict__,
        "broadcast": rows,
        "relay": latency,
        "routing": routing,
    }
    write_results("cluster", quick, report)
    return tables(rows, latency, routing)


def tables(
    rows: list[dict[str, Any]], latency: dict[str, dict[str, Any]], routing: dict[str, Any]
) -> str:
    """The three Markdown tables and the verdicts."""
    out = [
        "| setup | N | deliveries/s | min-max of runs | vs baseline | p50 ms | p99 ms "
        "| server CPU | deliveries/s per server core | nginx CPU | redis CPU | client CPU "
        "| other CPU | missing |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_setup = {r["setup"]: r for r in rows}
    for r in rows:
        if "error" in r:
            out.append(f"| {r['setup']} | error: {r['error']} |" + " |" * 12)
            continue
        out.append(
            f"| {r['setup']} | {r['n']:,} | {r['deliveries_per_s']:,} "
            f"| {min(r['spread']):,}-{max(r['spread']):,} | {fmt(r['vs_baseline'], '.2f')} "
            f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {fmt(r['server_cpu'], '.0%')} "
            f"| {fmt(r['per_server_core'], ',')} | {fmt(r.get('nginx_cpu'), '.0%')} "
            f"| {fmt(r.get('redis_cpu'), '.0%')} | {r['client_cpu']:.0%} "
            f"| {r['other_cpu']:.0%} | {r['missing_deliveries']} |"
        )
    one, two = by_setup.get(ONE, {}), by_setup.get(TWO, {})
    if one.get("deliveries_per_s") and two.get("deliveries_per_s"):
        raw = two["deliveries_per_s"] / one["deliveries_per_s"]
        core = (two["per_server_core"] or 0) / (one["per_server_core"] or 1)
        verdict = "met" if core >= TARGET_PER_CORE else "missed"
        out += [
            "",
            f"2 instances / 1 instance: deliveries/s {raw:.2f}; deliveries per server core "
            f"{core:.2f} (target ≥ {TARGET_PER_CORE}: {verdict})",
        ]
    out += [
        "",
        "| CPUs | game sockets | moves | games | p50 ms | p99 ms | p999 ms | max ms "
        "| added p50 ms | added p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for pinning, result in latency.items():
        cpus = "instances share CPU 0" if pinning == PINNED else "all on both CPUs"
        for kind, label in (("same", "same instance"), ("cross", "two instances")):
            r = result[kind]
            cells = (
                f"| {fmt(result['added_p50_ms'])} | {fmt(result['added_p99_ms'])} |"
                if kind == "cross"
                else "| | |"
            )
            out.append(
                f"| {cpus} | {label} | {r['moves']:,} | {r['games']} | {fmt(r['p50_ms'])} "
                f"| {fmt(r['p99_ms'])} | {fmt(r['p999_ms'])} | {fmt(r['max_ms'])} {cells}"
            )
    verdicts = []
    for pinning, result in latency.items():
        p99 = result.get("added_p99_ms")
        met = p99 is not None and p99 <= TARGET_ADDED_P99_MS
        verdicts.append(f"{pinning}: {'met' if met else 'missed'}")
    out += [
        "",
        f"Target added p99 ≤ {TARGET_ADDED_P99_MS:g} ms: {', '.join(verdicts)}",
        "",
        "| instance | users | user msgs for its users | user msgs handled (messages_out Δ) "
        "| user deliveries Δ | broadcasts handled | broadcast deliveries Δ |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in routing["instances"].items():
        out.append(
            f"| {name} | {r['users']} | {r['user_messages_for_its_users']:,} "
            f"| {r['user_messages_out']:,.0f} | {r['user_deliveries']:,.0f} "
            f"| {r['broadcast_messages_out']:,.0f} | {r['broadcast_deliveries']:,.0f} |"
        )
    out += [
        "",
        f"K = {routing['user_messages']:,} user messages, B = {routing['broadcasts']} broadcasts. "
        f"Redis PUBLISH receivers: user messages {routing['user_publish_receivers_total']:,} in "
        f"all (max {routing['user_publish_receivers_max']} per message), broadcasts "
        f"{routing['broadcast_publish_receivers']} per message. Received by clients: "
        f"{routing['user_messages_received']:,} user messages "
        f"({routing['user_messages_missing']} missing, {routing['misrouted_to_user']} extra).",
    ]
    return "\n".join(out)
