"""Fan-out load generator: N WebSocket subscribers, one publisher, throughput/latency/RSS.

Runs in its own process (``python -m bench.loadgen --port P --n N --server-pid PID``) and prints
one JSON object on stdout. To keep the generator cheaper than any server it measures, it uses
plain sockets and one ``epoll`` loop (no asyncio, no client library):

* handshakes are hand-written and pipelined in batches (send many requests, then read the 101s);
* counting subscribers only add ``recv_into`` byte counts to a total: every delivery is a
  fixed-size frame (2-byte header + 100-byte payload = 102 bytes);
* about one in ``--probe-every`` subscribers is a *probe* that parses frames, reads the sequence
  number and send timestamp embedded in the payload and records publish-to-receive latency;
* the publisher sends masked 100-byte text frames under a window: message ``i`` is sent only once
  every probe has received message ``i - window``, which keeps the server saturated without
  unbounded queueing.

Other servers' URLs and framing (additive options, defaults unchanged): ``--path`` is the URL
path (and query) the ``subscribe-broadcast`` / ``publish-broadcast`` flag is appended to;
``--preamble`` is a text frame every connection sends right after the upgrade and
``--preamble-replies`` the number of server frames each then reads and skips before it counts
(Socket.IO: ``40``, then the ``0{...}`` open and ``40{...}`` connect packets);
``--frame-prefix`` / ``--frame-suffix`` wrap the 100-byte payload in every published and
delivered frame (Socket.IO: ``42["m","`` and ``"]``), so the payload, and what a delivery
carries, stay the same while the frame grows by the wrapper. ``--helper-pid`` (repeatable) names
processes the server relies on (Redis): their CPU is reported as ``helper_cpu`` rather than in
``other_cpu``.

Every wait has a deadline and every loop is bounded, so a run always terminates.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import psutil  # type: ignore[import-untyped]

PAYLOAD_SIZE = 100
FRAME_SIZE = PAYLOAD_SIZE + 2  # unmasked server frame, 7-bit length
HOST = "127.0.0.1"
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
BATCH = 200  # handshakes in flight at once


class BenchError(RuntimeError):
    """A run could not complete (connection failures, stalled delivery...)."""


def log(message: str) -> None:
    """Progress line on stderr."""
    print(f"[loadgen {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Controller:
    """Tracks which messages every probe has seen and collects latencies."""

    nprobes: int
    acked: int = -1
    recording: bool = False
    unexpected_frames: int = 0
    counts: dict[int, int] = field(default_factory=dict)
    latencies_ns: list[int] = field(default_factory=list)

    def on_probe(self, seq: int, latency_ns: int) -> None:
        """Record that one probe received message ``seq``."""
        if self.recording:
            self.latencies_ns.append(latency_ns)
        seen = self.counts.get(seq, 0) + 1
        if seen < self.nprobes:
            self.counts[seq] = seen
        else:
            self.counts.pop(seq, None)  # absent when there is a single probe
            self.acked = max(self.acked, seq)


class Probe:
    """Frame parser for one probe connection."""

    def __init__(self, ctrl: Controller, prefix: int = 0, suffix: int = 0) -> None:
        self.ctrl = ctrl
        self.pending = bytearray()
        self.offset = prefix  # payload bytes before the sequence number
        self.length = prefix + PAYLOAD_SIZE + suffix

    def feed(self, data: bytes | memoryview) -> None:
        """Parse complete frames and report each message to the controller."""
        buf = self.pending
        buf += data
        while len(buf) >= 2:
            length, start = buf[1] & 0x7F, 2
            if length >= 126:
                start = 4 if length == 126 else 10
                if len(buf) < start:
                    return
                length = int.from_bytes(buf[2:start], "big")
            if len(buf) < start + length:
                return
            opcode = buf[0] & 0x0F
            payload = bytes(buf[start : start + length])
            del buf[: start + length]
            if opcode != 1 or length != self.length:
                self.ctrl.unexpected_frames += 1
                continue
            at = self.offset
            latency = time.perf_counter_ns() - int(payload[at + 11 : at + 30])
            self.ctrl.on_probe(int(payload[at : at + 10]), latency)


def frame_end(buf: bytes, pos: int = 0) -> int | None:
    """End offset of the unmasked server frame starting at ``pos``, or None if incomplete."""
    if len(buf) - pos < 2:
        return None
    length, start = buf[pos + 1] & 0x7F, pos + 2
    if length >= 126:
        start = pos + (4 if length == 126 else 10)
        if len(buf) < start:
            return None
        length = int.from_bytes(buf[pos + 2 : start], "big")
    return start + length if len(buf) >= start + length else None


def header_size(length: int) -> int:
    """Bytes of an unmasked server frame header for a ``length``-byte payload."""
    return 2 if length < 126 else 4 if length < 65536 else 10


def client_frame(payload: bytes) -> bytes:
    """A masked (zero key) client text frame."""
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n < 65536:
        head = bytes([0x81, 0xFE]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0xFF]) + n.to_bytes(8, "big")
    return head + bytes(4) + payload


@dataclass(frozen=True)
class Framing:
    """URL path and the per-server framing options (defaults: our ws4redis contract)."""

    path: str = "/ws/bench"
    preamble: bytes = b""
    replies: int = 0
    prefix: bytes = b""
    suffix: bytes = b""

    @property
    def frame_size(self) -> int:
        """Bytes of one delivered frame."""
        length = len(self.prefix) + PAYLOAD_SIZE + len(self.suffix)
        return header_size(length) + length


DEFAULT_FRAMING = Framing()


def request_bytes(port: int, query: str, path: str = "/ws/bench") -> bytes:
    """The HTTP upgrade request for ``<path>?<query>`` (``&<query>`` if ``path`` has a query)."""
    joiner = "&" if "?" in path else "?"
    return (
        f"GET {path}{joiner}{query} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0) so that no TIME_WAIT sockets pile up."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_head(sock: socket.socket, deadline: float) -> bytes:
    """Read the HTTP response head; return bytes received after it. Raises on non-101."""
    data = b""
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk or len(data) > 16384:
            raise BenchError(f"bad handshake response: {data[:80]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise BenchError(f"handshake refused: {head[:80]!r}")
    return rest


def skip_frames(sock: socket.socket, data: bytes, count: int, deadline: float) -> bytes:
    """Read until ``count`` whole server frames are in; return the bytes after them."""
    pos = 0
    for _ in range(count):
        while (end := frame_end(data, pos)) is None:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(4096)
            if not chunk:
                raise BenchError(f"closed after the handshake: {data[:80]!r}")
            data += chunk
        pos = end
    return data[pos:]


def handshake_batch(
    port: int, request: bytes, count: int, timeout: float, framing: Framing = DEFAULT_FRAMING
) -> list[tuple[socket.socket, bytes]]:
    """Open ``count`` connections: send all requests, then read all responses (then, with a
    preamble, send it on each and read each one's replies)."""
    deadline = time.monotonic() + timeout
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection((HOST, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks.append(sock)
            sock.sendall(request)
        heads = [(sock, read_head(sock, deadline)) for sock in socks]
        if not framing.preamble and not framing.replies:
            return heads
        if framing.preamble:
            for sock, _rest in heads:
                sock.sendall(client_frame(framing.preamble))
        return [(sock, skip_frames(sock, rest, framing.replies, deadline)) for sock, rest in heads]
    except (OSError, BenchError):
        for sock in socks:
            reset(sock)
        raise


def open_connections(
    port: int,
    query: str,
    n: int,
    timeout: float,
    attempts: int = 4,
    framing: Framing = DEFAULT_FRAMING,
) -> list[tuple[socket.socket, bytes]]:
    """Open ``n`` WebSocket connections in batches, retrying a failed batch a few times."""
    request = request_bytes(port, query, framing.path)
    out: list[tuple[socket.socket, bytes]] = []
    while len(out) < n:
        count = min(BATCH, n - len(out))
        for attempt in range(attempts):
            try:
                out += handshake_batch(port, request, count, timeout, framing)
                break
            except (OSError, BenchError) as exc:
                if attempt == attempts - 1:
                    for sock, _rest in out:
                        reset(sock)
                    raise BenchError(f"connect failed after {len(out)} of {n}: {exc!r}") from exc
                time.sleep(0.1 * (attempt + 1))
    return out


class Publisher:
    """Sends windowed, timestamped messages on one connection."""

    def __init__(
        self,
        sock: socket.socket,
        ctrl: Controller,
        window: int,
        stall: float,
        framing: Framing = DEFAULT_FRAMING,
    ) -> None:
        self.sock = sock
        self.prefix, self.suffix = framing.prefix, framing.suffix
        self.ctrl = ctrl
        self.window = window
        self.stall = stall
        self.sent = 0
        self.last_progress = time.monotonic()
        self.last_acked = -1

    def frame(self) -> bytes:
        """A masked (zero key) client text frame carrying the sequence and send time."""
        text = f"{self.sent:010d}:{time.perf_counter_ns():019d}:".encode()
        if self.prefix or self.suffix:
            return client_frame(self.prefix + text.ljust(PAYLOAD_SIZE, b"x") + self.suffix)
        return b"\x81" + bytes([0x80 | PAYLOAD_SIZE]) + bytes(4) + text.ljust(PAYLOAD_SIZE, b"x")

    def pump(self, now: float) -> None:
        """Send what the window allows; raise if probes stopped making progress."""
        acked = self.ctrl.acked
        if acked != self.last_acked:
            self.last_acked, self.last_progress = acked, now
        elif now - self.last_progress > self.stall and acked < self.sent - 1:
            raise BenchError(f"delivery stalled at message {acked + 1} of {self.sent}")
        while acked >= self.sent - 1 - self.window:
            self.sock.sendall(self.frame())
            self.sent += 1


class Receiver:
    """The epoll loop over all subscriber sockets."""

    def __init__(self, conns: list[tuple[socket.socket, bytes]], probes: dict[int, Probe]) -> None:
        self.ep = select.epoll()
        self.socks = {sock.fileno(): sock for sock, _rest in conns}
        self.probes = probes
        self.recv = {fd: sock.recv_into for fd, sock in self.socks.items()}
        self.total = 0
        self.closed = 0
        self.buffer = bytearray(256 * 1024)
        for fd, (sock, rest) in zip(self.socks, conns, strict=True):
            sock.setblocking(False)
            self.ep.register(fd, select.EPOLLIN)
            self.total += len(rest)
            if rest and fd in probes:
                probes[fd].feed(rest)

    def run(self, seconds: float, publisher: Publisher | None = None, pause: float = 0.0) -> None:
        """Receive (and publish) for ``seconds``, sleeping ``pause`` s after each poll round.

        The pause lets several frames queue per socket so that one ``recv`` returns many, and
        the server's ``send`` rarely has to wake a sleeping reader (a loopback-only cost).
        """
        buf, view = self.buffer, memoryview(self.buffer)
        recv, probes, poll = self.recv, self.probes, self.ep.poll
        total = self.total
        now = time.monotonic()
        until = now + seconds
        try:
            while now < until:
                if publisher is not None:
                    publisher.pump(now)
                for fd, _ev in poll(0.02):
                    try:
                        n = recv[fd](buf)
                    except BlockingIOError:
                        continue
                    except OSError:
                        n = 0
                    if n == 0:
                        self.ep.unregister(fd)
                        del recv[fd]
                        self.closed += 1
                        continue
                    total += n
                    if fd in probes:
                        probes[fd].feed(view[:n])
                if pause:
                    time.sleep(pause)
                now = time.monotonic()
        finally:
            self.total = total

    def close(self) -> None:
        """Reset every connection."""
        self.ep.close()
        for sock in self.socks.values():
            reset(sock)


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU time of a process."""
    times = proc.cpu_times()
    return float(times.user + times.system)


def own_cpu_seconds() -> float:
    """User + system CPU time of this process."""
    times = os.times()
    return float(times.user + times.system)


def machine_cpu() -> tuple[float, float]:
    """Machine-wide (busy, steal) CPU seconds; busy counts every state but idle/iowait/steal."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - t.iowait - t.steal, t.steal


def percentile(values: list[int], q: float) -> float:
    """Nearest-rank percentile of nanosecond values, in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement: idle RSS per connection, then saturated fan-out."""
    server = psutil.Process(args.server_pid)
    helpers = [psutil.Process(pid) for pid in args.helper_pid]
    framing = framing_of(args)
    frame_size = framing.frame_size
    rss_before = server.memory_info().rss
    started = time.monotonic()
    conns = open_connections(
        args.port, "subscribe-broadcast", args.n, args.connect_timeout, framing=framing
    )
    connect_s = time.monotonic() - started
    log(f"{args.n} subscribers connected in {connect_s:.2f}s")
    probe_fds = [sock.fileno() for sock, _ in conns[args.probe_every // 2 :: args.probe_every]]
    ctrl = Controller(nprobes=len(probe_fds))
    prefix, suffix = len(framing.prefix), len(framing.suffix)
    receiver = Receiver(conns, {fd: Probe(ctrl, prefix, suffix) for fd in probe_fds})
    try:
        receiver.run(args.settle)
        rss_after = server.memory_info().rss
        received_before = receiver.total if framing.replies else 0  # the server's extra frames
        (pub_sock, _), *_ = open_connections(
            args.port, "publish-broadcast", 1, args.connect_timeout, framing=framing
        )
        pub_sock.settimeout(args.stall_timeout)
        publisher = Publisher(pub_sock, ctrl, args.window, args.stall_timeout, framing)
        receiver.run(args.warmup, publisher, args.pause)
        b0, s0, c0, l0 = receiver.total, publisher.sent, cpu_seconds(server), own_cpu_seconds()
        h0 = sum(map(cpu_seconds, helpers))
        m0, t0 = machine_cpu(), time.monotonic()
        ctrl.recording = True
        receiver.run(args.duration, publisher, args.pause)
        ctrl.recording = False
        elapsed = time.monotonic() - t0
        b1, s1, c1, l1 = receiver.total, publisher.sent, cpu_seconds(server), own_cpu_seconds()
        h1 = sum(map(cpu_seconds, helpers))
        m1 = machine_cpu()
        expected = received_before + publisher.sent * args.n * frame_size
        for _ in range(int(args.drain_timeout / 0.1)):
            if receiver.total >= expected:
                break
            receiver.run(0.1)
        reset(pub_sock)
    finally:
        receiver.close()
    log(f"done: {(b1 - b0) / frame_size / elapsed:.0f} deliveries/s")
    extra = {"helper_cpu": round((h1 - h0) / elapsed, 2)} if helpers else {}
    return {
        "n": args.n,
        "probes": ctrl.nprobes,
        "window": args.window,
        "pause_ms": args.pause * 1000,
        "connect_s": round(connect_s, 2),
        "rss_kb_per_conn": round((rss_after - rss_before) / args.n / 1024, 2),
        "deliveries_per_s": round((b1 - b0) / frame_size / elapsed),
        "messages_per_s": round((s1 - s0) / elapsed, 1),
        "p50_ms": round(percentile(ctrl.latencies_ns, 0.50), 2),
        "p99_ms": round(percentile(ctrl.latencies_ns, 0.99), 2),
        "p999_ms": round(percentile(ctrl.latencies_ns, 0.999), 2),
        "latency_samples": len(ctrl.latencies_ns),
        "server_cpu": round((c1 - c0) / elapsed, 2),
        "loadgen_cpu": round((l1 - l0) / elapsed, 2),
        # CPU used by every other process (Redis included): a noisy-neighbour indicator.
        "other_cpu": round((m1[0] - m0[0] - (c1 - c0) - (l1 - l0) - (h1 - h0)) / elapsed, 2),
        "steal_cpu": round((m1[1] - m0[1]) / elapsed, 2),
        "messages_sent": publisher.sent,
        "missing_deliveries": max(0, (expected - receiver.total) // frame_size),
        "unexpected_frames": ctrl.unexpected_frames,
        "closed_by_server": receiver.closed,
        "frame_bytes": frame_size,
        **extra,
    }


def framing_of(args: argparse.Namespace) -> Framing:
    """The :class:`Framing` the command-line options describe."""
    return Framing(
        path=args.path,
        preamble=args.preamble.encode(),
        replies=args.preamble_replies,
        prefix=args.frame_prefix.encode(),
        suffix=args.frame_suffix.encode(),
    )


def pin_and_raise_limits(cpu: int) -> None:
    """Pin this process to ``cpu`` (if it exists) and raise the file-descriptor limit."""
    if hasattr(os, "sched_setaffinity") and cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {cpu})
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description="Fan-out load generator (see module docstring).")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--server-pid", type=int, required=True, help="for RSS and CPU readings")
    p.add_argument("--n", type=int, default=1000, help="subscriber connections")
    p.add_argument("--probe-every", type=int, default=100, help="one probe per this many subs")
    p.add_argument("--window", type=int, default=4, help="messages in flight beyond the acked one")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds")
    p.add_argument("--pause", type=float, default=0.001, help="sleep after each poll round (s)")
    p.add_argument("--settle", type=float, default=1.0, help="idle seconds before reading RSS")
    p.add_argument("--connect-timeout", type=float, default=10.0)
    p.add_argument("--stall-timeout", type=float, default=10.0)
    p.add_argument("--drain-timeout", type=float, default=5.0)
    p.add_argument("--cpu", type=int, default=1, help="CPU to pin the load generator to")
    p.add_argument("--path", default="/ws/bench", help="URL path (may hold a query)")
    p.add_argument("--preamble", default="", help="text frame sent after the upgrade")
    p.add_argument("--preamble-replies", type=int, default=0, help="server frames to skip")
    p.add_argument("--frame-prefix", default="", help="text before each 100-byte payload")
    p.add_argument("--frame-suffix", default="", help="text after each 100-byte payload")
    p.add_argument(
        "--helper-pid",
        type=int,
        action="append",
        default=[],
        help="a process the server relies on (e.g. Redis): its CPU is reported as helper_cpu "
        "and left out of other_cpu",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point: print the result (or an error) as one JSON line."""
    args = parse_args(argv)
    pin_and_raise_limits(args.cpu)
    try:
        result = measure(args)
    except (BenchError, OSError, psutil.Error) as exc:
        log(f"error: {exc!r}")
        print(json.dumps({"n": args.n, "error": repr(exc)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
