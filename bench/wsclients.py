"""Many idle WebSocket clients on one ``epoll`` loop, for the ``idle`` and ``storm`` scenarios.

Runs in its own process (``python -m bench.wsclients idle|storm --port P --server-pid PID ...``),
pinned to the client CPU, and prints one JSON object on stdout. As in :mod:`bench.loadgen`, it
uses plain non-blocking sockets and hand-written handshakes so that it stays cheaper than the
server it measures:

* a connection is a small state machine: ``connect()`` in progress, upgrade request sent, open;
  its handshake time runs from ``connect()`` to the end of the ``101`` response head;
* opens are started either *closed-loop* (at most ``in_flight`` handshakes outstanding: the
  connect rate the server sustains) or *open-loop* (evenly spaced over ``spread`` seconds, as
  clients reconnecting with jitter would: the latency a given arrival rate sees);
* open sockets are read and their frames parsed: pings are answered with pongs (the server reaps
  a silent peer), heartbeats and text frames are counted, a close frame counts as dropped;
* sockets are dropped with RST (``SO_LINGER`` 0), like a client whose network went away, and so
  that no ``TIME_WAIT`` entries pile up.

Socket ``i`` signs in as user ``i % users`` (cookies from ``--cookies``, a JSON list of Cookie
header values): every user gets a first socket early, so presence diffs stay few.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import json
import os
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

HOST = "127.0.0.1"
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
PATH = "/ws/lobby?subscribe-broadcast&subscribe-user"
CONNECTING, UPGRADING, OPEN = 0, 1, 2
PONG = 0x8A
IN, OUT = select.EPOLLIN, select.EPOLLOUT
BROKEN = select.EPOLLERR | select.EPOLLHUP


def log(message: str) -> None:
    """Progress line on stderr."""
    print(f"[wsclients {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def upgrade_request(port: int, cookie: str, path: str = PATH) -> bytes:
    """The HTTP upgrade request for ``path``, signed in with ``cookie`` when given."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {WS_KEY}",
        "Sec-WebSocket-Version: 13",
    ]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def reset(sock: socket.socket) -> None:
    """Close with RST so that no TIME_WAIT entry is left behind."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@dataclass
class Conn:
    """One client socket and where it is in its life."""

    sock: socket.socket
    index: int
    started_ns: int
    state: int = CONNECTING
    buf: bytearray = field(default_factory=bytearray)


@dataclass
class Tally:
    """What happened to the opens of one phase."""

    handshakes_ns: list[int] = field(default_factory=list)
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    last_open: float = 0.0

    def fail(self, reason: str) -> None:
        """Count one failed open."""
        self.failures[reason] += 1


class Clients:
    """Every client socket on one epoll loop."""

    def __init__(self, port: int, cookies: list[str], timeout: float) -> None:
        self.port = port
        self.requests = [upgrade_request(port, c) for c in cookies] or [upgrade_request(port, "")]
        self.timeout = timeout
        self.ep = select.epoll()
        self.conns: dict[int, Conn] = {}
        self.pending: collections.deque[Conn] = collections.deque()  # in start order
        self.in_flight = 0
        self.open = 0
        self.frames = 0
        self.pongs = 0
        self.dropped_by_server = 0
        self.tally = Tally()
        self.buffer = bytearray(64 * 1024)

    def start(self, index: int) -> None:
        """Begin a non-blocking connect for socket ``index``."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Conn(sock, index, time.perf_counter_ns())
        err = sock.connect_ex((HOST, self.port))
        if err not in (0, errno.EINPROGRESS):
            reset(sock)
            self.tally.fail(errno.errorcode.get(err, str(err)))
            return
        self.conns[sock.fileno()] = conn
        self.pending.append(conn)
        self.in_flight += 1
        self.ep.register(sock.fileno(), OUT)

    def finish(self, conn: Conn, reason: str | None) -> None:
        """End ``conn`` (``reason`` None: it was open); count a failed handshake."""
        fd = conn.sock.fileno()
        self.conns.pop(fd, None)
        with contextlib.suppress(OSError, ValueError):
            self.ep.unregister(fd)
        if conn.state == OPEN:
            self.open -= 1
        else:
            self.in_flight -= 1
            self.tally.fail(reason or "closed")
        conn.state = -1
        reset(conn.sock)

    def poll(self, timeout: float) -> None:
        """One epoll round: progress handshakes, read open sockets, expire slow handshakes."""
        for fd, events in self.ep.poll(timeout):
            conn = self.conns.get(fd)
            if conn is None:
                continue
            if conn.state == CONNECTING:
                self.on_connected(conn, events)
            else:
                self.on_readable(conn)
        self.expire()

    def on_connected(self, conn: Conn, events: int) -> None:
        """``connect()`` ended: send the upgrade request, or count the failure."""
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err or events & BROKEN:
            self.finish(conn, errno.errorcode.get(err, "connect_error"))
            return
        try:
            conn.sock.send(self.requests[conn.index % len(self.requests)])
        except OSError as exc:
            self.finish(conn, errno.errorcode.get(exc.errno or 0, "send_error"))
            return
        conn.state = UPGRADING
        self.ep.modify(conn.sock.fileno(), IN)

    def on_readable(self, conn: Conn) -> None:
        """Read what arrived: the response head, or frames on an open socket."""
        try:
            n = conn.sock.recv_into(self.buffer)
        except BlockingIOError:
            return
        except OSError as exc:
            self.on_lost(conn, errno.errorcode.get(exc.errno or 0, "recv_error"))
            return
        if n == 0:
            self.on_lost(conn, "eof")
            return
        conn.buf += memoryview(self.buffer)[:n]
        if conn.state == UPGRADING:
            self.on_head(conn)
        else:
            self.on_frames(conn)

    def on_lost(self, conn: Conn, reason: str) -> None:
        """The peer closed or reset the socket."""
        if conn.state == OPEN:
            self.dropped_by_server += 1
        self.finish(conn, reason)

    def on_head(self, conn: Conn) -> None:
        """A complete response head opens the socket (101) or fails it (anything else)."""
        end = conn.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(conn.buf) > 16384:
                self.finish(conn, "bad_response")
            return
        head = bytes(conn.buf[:end])
        del conn.buf[: end + 4]
        if not head.startswith(b"HTTP/1.1 101"):
            self.finish(conn, "http_" + head[9:12].decode("latin-1", "replace"))
            return
        self.tally.handshakes_ns.append(time.perf_counter_ns() - conn.started_ns)
        self.tally.last_open = time.monotonic()
        conn.state = OPEN
        self.in_flight -= 1
        self.open += 1
        if conn.buf:
            self.on_frames(conn)

    def on_frames(self, conn: Conn) -> None:
        """Parse complete server frames: answer pings, count the rest, stop at a close."""
        buf, pos, end = conn.buf, 0, len(conn.buf)
        while end - pos >= 2:
            opcode, length, start = buf[pos] & 0x0F, buf[pos + 1] & 0x7F, pos + 2
            if length >= 126:
                start += 2 if length == 126 else 8
                if end < start:
                    break
                length = int.from_bytes(buf[pos + 2 : start], "big")
            if end < start + length:
                break
            pos = start + length
            self.frames += 1
            if opcode == 9 and length < 126:
                self.pong(conn, bytes(buf[start:pos]))
            elif opcode == 8:
                self.on_lost(conn, "close_frame")
                return
        del buf[:pos]

    def pong(self, conn: Conn, payload: bytes) -> None:
        """Answer a ping with a masked (zero key) pong."""
        with contextlib.suppress(OSError):
            conn.sock.send(bytes((PONG, 0x80 | len(payload))) + bytes(4) + payload)
            self.pongs += 1

    def expire(self) -> None:
        """Fail handshakes older than the timeout (``pending`` is in start order)."""
        limit = time.perf_counter_ns() - int(self.timeout * 1e9)
        pending = self.pending
        while pending and (pending[0].state == OPEN or pending[0].state < 0):
            pending.popleft()
        while pending and pending[0].started_ns < limit:
            conn = pending.popleft()
            if conn.state in (CONNECTING, UPGRADING):
                self.finish(conn, "timeout")

    def open_many(self, indices: range, *, in_flight: int, spread: float) -> Tally:
        """Open sockets ``indices``: at most ``in_flight`` handshakes at once, their starts
        evenly spaced over ``spread`` s (0: as fast as the cap allows). Returns their tally."""
        self.tally = Tally()
        started = time.monotonic()
        step = spread / max(1, len(indices))
        todo = iter(indices)
        nxt = next(todo, None)
        k = 0
        while nxt is not None or self.in_flight:
            now = time.monotonic()
            while nxt is not None and self.in_flight < in_flight and now >= started + k * step:
                self.start(nxt)
                nxt, k = next(todo, None), k + 1
            capped = nxt is None or self.in_flight >= in_flight
            self.poll(0.01 if capped else min(0.01, max(0.0, started + k * step - now)))
        return self.tally

    def hold(self, seconds: float) -> None:
        """Keep every open socket read (pings answered) for ``seconds``."""
        until = time.monotonic() + seconds
        while (now := time.monotonic()) < until:
            self.poll(min(0.05, until - now))

    def drop_all(self) -> int:
        """Reset every socket at once; returns how many were open."""
        was_open = self.open
        for conn in list(self.conns.values()):
            self.finish(conn, None if conn.state == OPEN else "dropped")
        self.pending.clear()
        return was_open

    def close(self) -> None:
        """Reset everything and release the epoll object."""
        self.drop_all()
        self.ep.close()


class ServerMeter:
    """CPU (server process and its children, e.g. the embedded MongoDB) and RSS of the server,
    this client's CPU and the rest of the machine's, over a window."""

    def __init__(self, pid: int) -> None:
        self.server = psutil.Process(pid)
        self.tree = [self.server, *self.server.children(recursive=True)]
        self.start()

    def cpu(self) -> list[float]:
        """CPU seconds of each process of the server tree (the server first)."""
        return [cpu_seconds(proc) for proc in self.tree]

    def start(self) -> None:
        """Begin a window."""
        self.t0, self.c0, self.own0, self.m0 = time.monotonic(), self.cpu(), own(), machine()

    def read(self) -> dict[str, float]:
        """Cores used since :meth:`start` by the server tree (``helpers_cpu``: its children),
        this client and the other processes."""
        wall = max(1e-9, time.monotonic() - self.t0)
        cpu = self.cpu()
        server, client = (sum(cpu) - sum(self.c0)) / wall, (own() - self.own0) / wall
        other = (machine() - self.m0) / wall - server - client
        return {
            "server_cpu": round(server, 2),
            "helpers_cpu": round((sum(cpu[1:]) - sum(self.c0[1:])) / wall, 2),
            "client_cpu": round(client, 2),
            "other_cpu": round(max(0.0, other), 2),
        }

    def rss(self) -> int:
        """Resident bytes of the server process itself."""
        return int(self.server.memory_info().rss)


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU seconds of ``proc`` (0 once it is gone)."""
    with contextlib.suppress(psutil.Error):
        t = proc.cpu_times()
        return float(t.user + t.system)
    return 0.0


def own() -> float:
    """User + system CPU seconds of this process."""
    t = os.times()
    return float(t.user + t.system)


def machine() -> float:
    """Machine-wide busy CPU seconds (idle, iowait and steal excluded)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - t.iowait - t.steal)


def tcp_counters() -> dict[str, int]:
    """Machine-wide kernel counters: accept-queue overflows and SYN retransmissions."""
    wanted = {"ListenOverflows": "listen_overflows", "TCPSynRetrans": "syn_retransmits"}
    with contextlib.suppress(OSError, ValueError):
        rows = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()]
        for names, values in zip(rows[::2], rows[1::2], strict=False):
            if names[0] == "TcpExt:":
                found = dict(zip(names[1:], map(int, values[1:]), strict=False))
                return {ours: found.get(name, 0) for name, ours in wanted.items()}
    return {}


def counters_since(before: dict[str, int]) -> dict[str, int]:
    """How much each :func:`tcp_counters` value grew since ``before``."""
    return {name: value - before.get(name, 0) for name, value in tcp_counters().items()}


def percentiles(values_ns: list[int]) -> dict[str, float | None]:
    """Nearest-rank p50/p99/p999 in milliseconds (None without samples)."""
    ordered = sorted(values_ns)
    out: dict[str, float | None] = {}
    for name, q in (("p50_ms", 0.50), ("p99_ms", 0.99), ("p999_ms", 0.999)):
        index = min(len(ordered) - 1, int(q * len(ordered)))
        out[name] = round(ordered[index] / 1e6, 2) if ordered else None
    return out


def summary(tally: Tally, n: int, started: float) -> dict[str, Any]:
    """Opens, failures, wall time, rate and handshake percentiles of one phase."""
    opened = len(tally.handshakes_ns)
    wall = max(1e-9, (tally.last_open or started) - started)
    return {
        "opened": opened,
        "failures": sum(tally.failures.values()),
        "failure_kinds": dict(tally.failures),
        "wall_s": round(wall, 3),
        "per_s": round(opened / wall, 1) if opened else 0.0,
        **percentiles(tally.handshakes_ns),
        "attempted": n,
    }


def settle_rss(
    clients: Clients, meter: ServerMeter, seconds: float
) -> tuple[int, dict[str, float]]:
    """Hold every socket for ``seconds`` (a measured idle window); server RSS and CPU after."""
    meter.start()
    clients.hold(seconds)
    return meter.rss(), meter.read()


def run_idle(args: argparse.Namespace, clients: Clients, meter: ServerMeter) -> dict[str, Any]:
    """Open ``n`` sockets closed-loop, hold them idle, report RSS per socket and connect rate."""
    rss_before = meter.rss()
    meter.start()
    started, kernel = time.monotonic(), tcp_counters()
    tally = clients.open_many(range(args.n), in_flight=args.in_flight, spread=0.0)
    connect = {**summary(tally, args.n, started), **meter.read(), **counters_since(kernel)}
    log(f"{connect['opened']} of {args.n} open in {connect['wall_s']}s")
    rss_after, idle_cpu = settle_rss(clients, meter, args.settle)
    held = clients.open
    return {
        "n": args.n,
        "held": held,
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_after_mb": round(rss_after / 2**20, 1),
        "rss_kb_per_conn": round((rss_after - rss_before) / max(1, held) / 1024, 2),
        "connect": connect,
        "idle": {**idle_cpu, "seconds": args.settle},
    }


def run_storm(args: argparse.Namespace, clients: Clients, meter: ServerMeter) -> dict[str, Any]:
    """Open ``n`` sockets, drop them all, reconnect them open-loop over ``spread`` s."""
    rss_start = meter.rss()
    started = time.monotonic()
    first = summary(
        clients.open_many(range(args.n), in_flight=args.in_flight, spread=0.0), args.n, started
    )
    rss_before, _cpu = settle_rss(clients, meter, args.settle)
    log(f"{first['opened']} of {args.n} open; dropping them all")
    meter.start()
    dropped_at, kernel = time.monotonic(), tcp_counters()
    dropped = clients.drop_all()
    tally = clients.open_many(range(args.n), in_flight=args.n, spread=args.spread)
    storm = {**summary(tally, args.n, dropped_at), **meter.read(), **counters_since(kernel)}
    log(f"{storm['opened']} of {args.n} reopened in {storm['wall_s']}s, {storm['failures']} failed")
    rss_after, _cpu = settle_rss(clients, meter, args.settle)
    return {
        "n": args.n,
        "spread_s": args.spread,
        "dropped": dropped,
        "first_connect": first,
        "storm": storm,
        "held_after": clients.open,
        "rss_start_mb": round(rss_start / 2**20, 1),
        "rss_before_storm_mb": round(rss_before / 2**20, 1),
        "rss_after_storm_mb": round(rss_after / 2**20, 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description="Idle WebSocket clients (see module docstring).")
    p.add_argument("mode", choices=["idle", "storm"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--server-pid", type=int, required=True, help="for RSS and CPU readings")
    p.add_argument("--n", type=int, default=1000, help="client sockets")
    p.add_argument("--cookies", type=Path, help="JSON list of Cookie headers, one per user")
    p.add_argument("--in-flight", type=int, default=100, help="closed-loop handshakes at once")
    p.add_argument("--spread", type=float, default=10.0, help="storm: reconnects over (s)")
    p.add_argument("--settle", type=float, default=2.0, help="idle hold before reading RSS (s)")
    p.add_argument("--timeout", type=float, default=15.0, help="handshake timeout (s)")
    p.add_argument("--cpu", type=int, default=1, help="CPU to pin this process to")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point: print the result (or an error) as one JSON line."""
    from bench.loadgen import pin_and_raise_limits

    args = parse_args(argv)
    pin_and_raise_limits(args.cpu)
    cookies = json.loads(args.cookies.read_text()) if args.cookies else []
    clients = Clients(args.port, cookies, args.timeout)
    try:
        meter = ServerMeter(args.server_pid)
        run = run_idle if args.mode == "idle" else run_storm
        result = run(args, clients, meter)
    except (OSError, psutil.Error) as exc:
        log(f"error: {exc!r}")
        print(json.dumps({"n": args.n, "error": repr(exc)}))
        return 1
    finally:
        clients.close()
    result.update(users=len(cookies), frames=clients.frames, pongs=clients.pongs)
    result["dropped_by_server"] = clients.dropped_by_server
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
