"""Abusive clients (``python -m bench abuse``): slow readers and flooders against a broadcast load.

Each part runs on a freshly started server (Playhouse with Redis, as in ``fanout``; and the bare
Tornado baseline of ``bench/baseline_tornado.py``, side by side in the same run) with N broadcast
subscribers on ``/ws/bench?subscribe-broadcast`` and a publisher at a *fixed* rate, well below
saturation (16,000-byte messages: a slow reader must be able to fill ``max_outgoing_bytes``
within seconds). Playhouse is published to straight into Redis (RESP ``PUBLISH``), the baseline
over a ``?publish-broadcast`` socket. One probe per 100 subscribers records publish-to-receive
latency (p50/p99); server RSS is read from ``/proc/<pid>/status`` (VmRSS) every 0.1 s.

1. **Slow clients.** 1% of the N subscribers are raw sockets with SO_RCVBUF 4 KiB. They read
   during the clean window, then stop reading for good. Measured: the others' latency (clean
   window vs the slow window), RSS before / peak / after, the time until the server gives up on
   each slow socket (``playhouse_ws_slow_client_closes_total`` and ``playhouse_ws_connections``
   from ``/metrics``, scraped every 0.5 s) and until the TCP connection is gone (EPOLLRDHUP /
   EPOLLHUP on the raw socket).
2. **Flooders.** Clean window, then a window with two flooder processes
   (``python -m bench.abuse --flooder rate|big``): one sends 20-byte text frames on
   ``/ws/flood?publish-broadcast`` (no subscribers) at 10,000 frames/s, the other sends
   10,000,000-byte text frames there; each reconnects as soon as it is closed. Both connect
   from 127.0.0.1, which ``limits.exempt_ips`` exempts from the per-IP socket and handshake
   limits: only the per-socket frame rate limit and ``max_message_bytes`` act on them.

CPU pinning (2 cores): the server on CPU 0; Redis, this process (subscribers, publisher) and
the flooders on CPU 1. Results: ``bench/results/abuse[-quick].json``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench import procs
from bench.loadgen import (
    BenchError,
    Controller,
    Probe,
    Publisher,
    Receiver,
    open_connections,
    percentile,
    read_head,
    request_bytes,
    reset,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
FACILITY = "bench"
FLOOD_FACILITY = "flood"
BASELINE = "tornado-baseline"
PLAYHOUSE = "playhouse-redis"
POLL_PAUSE = 0.001
SLOW_RCVBUF = 4096  # the kernel doubles it
TICK = 0.1  # RSS and slow-socket sampling period (s)
SCRAPE_EVERY = 0.5  # /metrics period (s)
NON_EXEMPT = "127.0.0.2"  # a loopback address not in limits.exempt_ips
FLOOD_RATE = 10_000  # frames/s of the rate flooder
BIG_FRAME = 10_000_000  # bytes of the big flooder's frames
TARGET_SLOW_P99 = 1.5
TARGET_FLOOD_P99 = 1.2
TARGET_RSS_PER_SLOW_KB = 1024
TARGET_CLOSE_S = 10.0


@dataclass
class Settings:
    """Knobs that differ between a full and a ``--quick`` run."""

    n: int  # subscribers, the slow ones included
    slow: int  # subscribers that stop reading
    rate: float  # broadcast messages per second
    payload: int  # bytes per broadcast message
    warmup: float
    window: float  # clean and flood windows (s)
    slow_cap: float  # longest slow window (s)
    baseline_cap: float  # slow window of the baseline, which never closes anyone (s)
    baseline: bool  # also run the bare Tornado baseline
    quiet_wait: float  # longest wait (s) for other processes to go quiet before each part
    env: dict[str, str] = field(default_factory=dict)  # extra Playhouse settings


def settings(quick: bool) -> Settings:
    """Full: N=2,000 (20 slow), 10 msg/s of 16,000 B, 2 s warm-up, 5 s windows, default limits;
    the slow window runs until the server has given up on every slow client (about 35-45 s
    after they stop reading, capped at 60 s), the baseline's (which never gives up) for 20 s;
    up to 10 s waiting for a quiet machine before each part.

    Quick: N=200 (2 slow), 20 msg/s of 32,000 B, 0.3 s windows, Playhouse only, limits
    scaled down (``max_outgoing_bytes`` 128 KiB, ``slow_client_seconds`` 0.5) so slow clients
    close fast; no wait."""
    if quick:
        env = {
            "PLAYHOUSE_LIMITS_MAX_OUTGOING_BYTES": "131072",
            "PLAYHOUSE_LIMITS_SLOW_CLIENT_SECONDS": "0.5",
        }
        return Settings(200, 2, 20.0, 32000, 0.2, 0.3, 7.0, 7.0, False, 0.0, env)
    return Settings(2000, 20, 10.0, 16000, 2.0, 5.0, 60.0, 20.0, True, 10.0)


def log(message: str) -> None:
    """Progress line on stderr."""
    print(f"[abuse {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- servers ---------------------------------------------------------------------------------


def playhouse_env(redis_url: str, extra: dict[str, str]) -> dict[str, str]:
    """The fan-out settings of ``bench.scenarios.playhouse_spec``, plus the flood facility."""
    return {
        "PLAYHOUSE_CHANNELS_PUBLISHABLE": f"{FACILITY},{FLOOD_FACILITY}",
        "PLAYHOUSE_WS4REDIS_HEARTBEAT": "",
        "PLAYHOUSE_WS4REDIS_EXPIRE": "0",
        "PLAYHOUSE_LIMITS_PING_INTERVAL": "0",
        "PLAYHOUSE_REDIS_URL": redis_url,
        "PLAYHOUSE_MONGODB_DATA_DIR": "memory",
        **extra,
    }


@contextmanager
def server(name: str, logdir: Path, redis_port: int, cfg: Settings) -> Iterator[tuple[int, int]]:
    """A fresh server under test on CPU 0; yields (port, pid)."""
    port = procs.free_port()
    if name == BASELINE:
        cmd = [sys.executable, str(ROOT / "bench" / "baseline_tornado.py"), "--port", str(port)]
        env: dict[str, str] = {}
    else:
        cmd = [sys.executable, "server.py", "--port", str(port)]
        env = playhouse_env(f"redis://{procs.HOST}:{redis_port}/0", cfg.env)
    logfile = logdir / f"{name}-{port}.log"
    proc = procs.start(cmd, logfile, procs.SERVER_CPU, env, ROOT)
    try:
        procs.wait_http_ok(proc, port, "/healthz", timeout=30)
        yield port, proc.pid
    finally:
        died = proc.poll()
        procs.stop(proc)
        if died is not None:
            log(f"{name} exited during the run ({died}): {procs.tail(logfile)}")


def rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (0 once it is gone)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def scrape(port: int) -> dict[str, float]:
    """Unlabelled samples of Playhouse's ``/metrics`` ({} on the baseline or on error)."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        with urllib.request.urlopen(f"http://{procs.HOST}:{port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    out[name] = float(value)
    return out


# --- the broadcast load -----------------------------------------------------------------------


def stamped(seq: int, size: int) -> bytes:
    """A payload ``bench.loadgen.Probe`` can parse: sequence, send time, padding."""
    return f"{seq:010d}:{time.perf_counter_ns():019d}:".encode().ljust(size, b"x")


class RatePublisher(Publisher):
    """Publishes ``rate`` messages per second of ``size`` bytes, at fixed times (no window)."""

    def __init__(self, sock: socket.socket, ctrl: Controller, rate: float, size: int) -> None:
        super().__init__(sock, ctrl, window=0, stall=0.0)
        self.rate = rate
        self.size = size
        self.started = time.monotonic()

    def frame(self) -> bytes:
        """A masked (zero key) client text frame, 16-bit length."""
        return b"\x81\xfe" + struct.pack("!H", self.size) + bytes(4) + stamped(self.sent, self.size)

    def pump(self, now: float) -> None:
        """Send every message due by ``now``."""
        while self.started + self.sent / self.rate <= now:
            self.sock.sendall(self.frame())
            self.sent += 1


class RedisRatePublisher(RatePublisher):
    """The same, as Redis ``PUBLISH broadcast:bench`` (replies read and discarded)."""

    def frame(self) -> bytes:
        channel = f"broadcast:{FACILITY}".encode()
        return b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            len(channel),
            channel,
            self.size,
            stamped(self.sent, self.size),
        )

    def pump(self, now: float) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self.sock.recv(65536, socket.MSG_DONTWAIT):
                pass
        super().pump(now)


class SizedProbe(Probe):
    """:class:`bench.loadgen.Probe` for payloads of ``size`` bytes (16-bit frame length)."""

    def __init__(self, ctrl: Controller, size: int) -> None:
        super().__init__(ctrl)
        self.size = size

    def feed(self, data: bytes | memoryview) -> None:
        buf = self.pending
        buf += data
        while len(buf) >= 4:
            length, start = buf[1] & 0x7F, 2
            if length == 126:
                start, length = 4, int.from_bytes(buf[2:4], "big")
            elif length == 127:
                if len(buf) < 10:
                    return
                start, length = 10, int.from_bytes(buf[2:10], "big")
            if len(buf) < start + length:
                return
            opcode = buf[0] & 0x0F
            payload = bytes(buf[start : start + 30])
            del buf[: start + length]
            if opcode != 1 or length != self.size:
                self.ctrl.unexpected_frames += 1
                continue
            self.ctrl.on_probe(int(payload[0:10]), time.perf_counter_ns() - int(payload[11:30]))


def slow_socket(port: int, timeout: float = 10.0) -> tuple[socket.socket, bytes]:
    """A subscriber with a 4 KiB receive buffer (set before connecting)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
    sock.settimeout(timeout)
    sock.connect((procs.HOST, port))
    sock.sendall(request_bytes(port, "subscribe-broadcast"))
    return sock, read_head(sock, time.monotonic() + timeout)


class Load:
    """N subscribers (the slow ones among them), probes, a fixed-rate publisher, RSS samples."""

    def __init__(self, name: str, port: int, pid: int, redis_port: int, cfg: Settings) -> None:
        self.name, self.port, self.pid, self.cfg = name, port, pid, cfg
        good = open_connections(port, "subscribe-broadcast", cfg.n - cfg.slow, timeout=20.0)
        self.slow = [slow_socket(port) for _ in range(cfg.slow)]
        probe_fds = [sock.fileno() for sock, _ in good[50::100]]
        self.ctrl = Controller(nprobes=len(probe_fds))
        probes: dict[int, Probe] = {fd: SizedProbe(self.ctrl, cfg.payload) for fd in probe_fds}
        self.receiver = Receiver(good + self.slow, probes)
        self.receiver.run(0.5)  # subscriptions reach Redis
        if name == BASELINE:
            (sock, _), *_ = open_connections(port, "publish-broadcast", 1, 10.0)
            sock.settimeout(10.0)
            self.publisher: RatePublisher = RatePublisher(sock, self.ctrl, cfg.rate, cfg.payload)
        else:
            sock = socket.create_connection((procs.HOST, redis_port), timeout=10.0)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(None)
            self.publisher = RedisRatePublisher(sock, self.ctrl, cfg.rate, cfg.payload)
        self.rss: list[tuple[float, int]] = []

    def run(self, seconds: float) -> None:
        """Receive and publish for ``seconds``, sampling RSS every ``TICK``."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            self.receiver.run(min(TICK, left), self.publisher, POLL_PAUSE)
            self.rss.append((time.monotonic(), rss_kb(self.pid)))

    def window(self, seconds: float, label: str) -> dict[str, Any]:
        """A measured window: the probes' latencies, deliveries/s, RSS, server CPU."""
        self.ctrl.latencies_ns = []
        self.ctrl.recording = True
        b0, s0, t0, c0 = self.receiver.total, self.publisher.sent, time.monotonic(), cpu(self.pid)
        first = len(self.rss)
        other = OtherCpu()
        self.run(seconds)
        elapsed = time.monotonic() - t0
        self.ctrl.recording = False
        rss = [kb for _, kb in self.rss[first:]] or [rss_kb(self.pid)]
        return {
            "window": label,
            "seconds": round(elapsed, 2),
            "messages_per_s": round((self.publisher.sent - s0) / elapsed, 1),
            "deliveries_per_s": round(
                (self.receiver.total - b0) / (self.cfg.payload + 4) / elapsed
            ),
            "p50_ms": round(percentile(self.ctrl.latencies_ns, 0.50), 2),
            "p99_ms": round(percentile(self.ctrl.latencies_ns, 0.99), 2),
            "max_ms": round(percentile(self.ctrl.latencies_ns, 1.0), 2),
            "latency_samples": len(self.ctrl.latencies_ns),
            "rss_kb_start": rss[0],
            "rss_kb_peak": max(rss),
            "rss_kb_end": rss[-1],
            "server_cpu": round((cpu(self.pid) - c0) / elapsed, 2),
            "unexpected_frames": self.ctrl.unexpected_frames,
            "closed_by_server": self.receiver.closed,
            "other_cpu": other.read(),
        }

    def stop_reading(self) -> None:
        """The slow subscribers stop reading (they stay open)."""
        for sock, _ in self.slow:
            fd = sock.fileno()
            with contextlib.suppress(KeyError, OSError):
                self.receiver.ep.unregister(fd)
                del self.receiver.recv[fd]

    def close(self) -> None:
        """Reset every socket."""
        reset(self.publisher.sock)
        self.receiver.close()


def kernel_queues(port: int) -> dict[str, Any]:
    """The server's TCP sockets on ``port`` as ``ss`` sees them: bytes queued in the kernel
    (Send-Q, not in the server's RSS) and sockets per state."""
    try:
        done = subprocess.run(
            ["ss", "-tnH", "state", "all", "sport", "=", f":{port}"],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    states: collections.Counter[str] = collections.Counter()
    send_q = 0
    for line in done.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2].isdigit():
            states[parts[0]] += 1
            send_q += int(parts[2])
    return {"send_q_kb": send_q // 1024, "states": dict(states)}


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine (idle, iowait and steal excluded)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - t.iowait - t.steal)


def ours() -> float:
    """CPU seconds of this process and every descendant (server, Redis, flooders)."""
    total = 0.0
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


class OtherCpu:
    """Cores used by processes that are not ours over a window (other sessions' noise)."""

    def __init__(self) -> None:
        self.t, self.machine, self.ours = time.monotonic(), machine_busy(), ours()

    def read(self) -> float:
        wall = max(1e-9, time.monotonic() - self.t)
        other = (machine_busy() - self.machine) - (ours() - self.ours)
        return round(max(0.0, other) / wall, 2)


def p99_series(marks: list[tuple[float, int]], latencies: list[int], step: float) -> list[Any]:
    """[t, p99 ms, samples] per ``step`` seconds, from (time, samples so far) marks."""
    out: list[Any] = []
    start_t, start_i = marks[0] if marks else (0.0, 0)
    for t, i in marks:
        if t - start_t >= step - 1e-6:
            chunk = latencies[start_i:i]
            out.append([round(t, 1), round(percentile(chunk, 0.99), 1), len(chunk)])
            start_t, start_i = t, i
    return out


def cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (from /proc/<pid>/stat)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


# --- 1. slow clients --------------------------------------------------------------------------


def slow_part(name: str, port: int, pid: int, redis_port: int, cfg: Settings) -> dict[str, Any]:
    """Clean window, then the slow subscribers stop reading: until the server has closed them
    all (plus 2 s) or ``cfg.slow_cap``."""
    load = Load(name, port, pid, redis_port, cfg)
    try:
        load.run(cfg.warmup)
        clean = load.window(cfg.window, "clean")
        metrics0 = scrape(port)
        watch = select.epoll()
        pending = {}
        for sock, _ in load.slow:
            watch.register(sock.fileno(), select.EPOLLRDHUP)
            pending[sock.fileno()] = sock
        load.stop_reading()
        t0 = time.monotonic()
        rss0 = rss_kb(pid)
        tcp_closed: list[float] = []
        timeline: list[dict[str, float]] = []
        first_drop = all_1013 = None
        next_scrape = t0
        load.ctrl.latencies_ns = []
        load.ctrl.recording = True
        b0, c0, first = load.receiver.total, cpu(pid), len(load.rss)
        other = OtherCpu()
        marks: list[tuple[float, int]] = [(0.0, 0)]
        cap = cfg.slow_cap if name != BASELINE else cfg.baseline_cap
        done_at: float | None = None
        while (now := time.monotonic()) - t0 < cap:
            load.run(TICK)
            marks.append((time.monotonic() - t0, len(load.ctrl.latencies_ns)))
            for fd, _ev in watch.poll(0):
                watch.unregister(fd)
                pending.pop(fd, None)
                tcp_closed.append(round(time.monotonic() - t0, 2))
            if now >= next_scrape:
                next_scrape += SCRAPE_EVERY
                m = scrape(port) if name != BASELINE else {}
                row = {
                    "t": round(now - t0, 2),
                    "rss_kb": rss_kb(pid),
                    "dropped": m.get("playhouse_ws_dropped_total", 0.0)
                    - metrics0.get("playhouse_ws_dropped_total", 0.0),
                    "slow_closes": m.get("playhouse_ws_slow_client_closes_total", 0.0)
                    - metrics0.get("playhouse_ws_slow_client_closes_total", 0.0),
                    "connections": m.get("playhouse_ws_connections", 0.0),
                }
                if len(timeline) % 4 == 0:
                    row.update(kernel_queues(port))
                timeline.append(row)
                if first_drop is None and row["dropped"] > 0:
                    first_drop = row["t"]
                if all_1013 is None and row["slow_closes"] >= cfg.slow:
                    all_1013 = row["t"]
            if done_at is None and (not pending or all_1013 is not None):
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at > (2.0 if not pending else 8.0):
                break  # all gone (or 1013 sent to all, and Tornado's 5 s close wait is over)
        elapsed = time.monotonic() - t0
        load.ctrl.recording = False
        rss = [kb for _, kb in load.rss[first:]]
        after = rss_kb(pid)
        watch.close()
        kernel_after = kernel_queues(port)
        slow = {
            "window": "slow",
            "seconds": round(elapsed, 2),
            "deliveries_per_s": round(
                (load.receiver.total - b0) / (cfg.payload + 4) / max(elapsed, 1e-9)
            ),
            "p50_ms": round(percentile(load.ctrl.latencies_ns, 0.50), 2),
            "p99_ms": round(percentile(load.ctrl.latencies_ns, 0.99), 2),
            "max_ms": round(percentile(load.ctrl.latencies_ns, 1.0), 2),
            "latency_samples": len(load.ctrl.latencies_ns),
            "server_cpu": round((cpu(pid) - c0) / max(elapsed, 1e-9), 2),
            "rss_kb_before": rss0,
            "rss_kb_peak": max(rss, default=after),
            "rss_kb_after": after,
            "rss_growth_kb_per_slow": round((max(rss, default=after) - rss0) / cfg.slow, 1),
            "tcp_closed_s": sorted(tcp_closed),
            "tcp_still_open": len(pending),
            "first_drop_s": first_drop,
            "all_1013_s": all_1013,
            "kernel_after": kernel_after,
            "kernel_peak_send_q_kb": max((r.get("send_q_kb", 0) for r in timeline), default=0),
            "metrics_timeline": timeline,
            "closed_by_server": load.receiver.closed,
            "other_cpu": other.read(),
            "p99_ms_per_2s": p99_series(marks, load.ctrl.latencies_ns, 2.0),
        }
        after_window = load.window(cfg.window, "after")
        return {"server": name, "clean": clean, "slow": slow, "after": after_window}
    finally:
        load.close()


# --- 2. flooders ------------------------------------------------------------------------------


def flooders(
    port: int, seconds: float, logdir: Path, source: str = ""
) -> list[subprocess.Popen[bytes]]:
    """Start the rate and the big-frame flooder processes (on the client CPU), connecting
    from ``source`` (default: the kernel's choice, 127.0.0.1)."""
    out = []
    for kind in ("rate", "big"):
        cmd = [
            sys.executable, "-m", "bench.abuse", "--flooder", kind,
            "--port", str(port), "--seconds", str(seconds), "--source", source,
        ]  # fmt: skip
        with (logdir / f"flooder-{kind}{source}.err").open("wb") as err:
            out.append(
                subprocess.Popen(
                    cmd,
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    preexec_fn=procs.child_setup(procs.CLIENT_CPU),
                )
            )
    return out


def collect(started: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    """Each flooder's JSON line, by kind."""
    stats: dict[str, Any] = {}
    for kind, proc in zip(("rate", "big"), started, strict=True):
        try:
            out, _ = proc.communicate(timeout=30)
            stats[kind] = json.loads(out.decode().strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
            proc.kill()
            stats[kind] = {"error": repr(exc)}
    return stats


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Counters that moved between two scrapes (messages in, rejections by reason)."""
    keys = [k for k in after if k.startswith(("playhouse_ws_messages_in", "playhouse_ws_rejected"))]
    return {k: after[k] - before.get(k, 0.0) for k in keys if after[k] != before.get(k, 0.0)}


def flood_part(
    name: str, port: int, pid: int, redis_port: int, cfg: Settings, logdir: Path
) -> dict[str, Any]:
    """Clean window, then the same with both flooders, then after; on Playhouse, once more
    with the flooders on 127.0.0.2 (not in ``exempt_ips``)."""
    load = Load(name, port, pid, redis_port, cfg)
    try:
        load.run(cfg.warmup)
        clean = load.window(cfg.window, "clean")
        m0 = scrape(port)
        started = flooders(port, cfg.window + 1.0, logdir)
        load.run(0.5)
        flooded = load.window(cfg.window, "flood")
        for proc in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        load.run(1.0)
        after_window = load.window(cfg.window, "after")
        m1 = scrape(port)
        flooded["flooders"] = collect(started)
        flooded["metrics_delta"] = delta(m0, m1)
        row = {"server": name, "clean": clean, "flood": flooded, "after": after_window}
        if name != BASELINE:  # the baseline has no per-IP limits
            started = flooders(port, cfg.window + 1.0, logdir, NON_EXEMPT)
            load.run(0.5)
            nonexempt = load.window(cfg.window, f"flood from {NON_EXEMPT}")
            nonexempt["flooders"] = collect(started)
            nonexempt["metrics_delta"] = delta(m1, scrape(port))
            row["flood_nonexempt"] = nonexempt
        return row
    finally:
        load.close()


def read_frames(buf: bytearray) -> Iterator[tuple[int, bytes]]:
    """Complete server frames (unmasked) at the start of ``buf``, removed as they are read."""
    while len(buf) >= 2:
        length, start = buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return
            start, length = 4, int.from_bytes(buf[2:4], "big")
        elif length == 127:
            if len(buf) < 10:
                return
            start, length = 10, int.from_bytes(buf[2:10], "big")
        if len(buf) < start + length:
            return
        frame = (buf[0] & 0x0F, bytes(buf[start : start + length]))
        del buf[: start + length]
        yield frame


def flood(kind: str, port: int, seconds: float, source: str = "") -> dict[str, Any]:
    """Flood ``/ws/flood?publish-broadcast`` for ``seconds``, reconnecting whenever closed."""
    request = request_bytes(port, "publish-broadcast").replace(
        f"/ws/{FACILITY}?".encode(), f"/ws/{FLOOD_FACILITY}?".encode()
    )
    small = b"\x81\x94" + bytes(4) + b"flood flood flood!!!"  # 20-byte masked text frame
    big_head = b"\x81\xff" + struct.pack("!Q", BIG_FRAME) + bytes(4)
    chunk = b"x" * 65536
    batch = FLOOD_RATE // 200  # frames every 5 ms
    codes: collections.Counter[str] = collections.Counter()
    lifetimes: list[float] = []
    frames = warnings = bytes_sent = refused = 0
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            sock = socket.create_connection(
                (procs.HOST, port), timeout=5.0, source_address=(source, 0) if source else None
            )
            sock.sendall(request)
            rest = bytearray(read_head(sock, time.monotonic() + 5.0))
        except (OSError, BenchError):
            refused += 1
            time.sleep(0.01)
            continue
        opened, code, tick = time.monotonic(), "none", time.monotonic()
        sock.setblocking(False)
        try:
            while time.monotonic() < until and code == "none":
                try:
                    if kind == "rate":
                        sock.sendall(small * batch)
                        frames += batch
                    else:
                        sock.setblocking(True)
                        sock.settimeout(2.0)
                        sock.sendall(big_head)
                        sent = 0
                        while sent < BIG_FRAME:
                            part = chunk[: min(len(chunk), BIG_FRAME - sent)]
                            sock.sendall(part)
                            sent += len(part)
                            bytes_sent += len(part)
                        frames += 1
                        sock.setblocking(False)
                except (BlockingIOError, TimeoutError):
                    pass
                except OSError:
                    code = "reset"
                with contextlib.suppress(BlockingIOError, InterruptedError, OSError):
                    sock.setblocking(False)
                    while data := sock.recv(65536):
                        rest += data
                    if code == "none":
                        code = "eof"
                for opcode, payload in read_frames(rest):
                    if opcode == 8:
                        code = str(int.from_bytes(payload[:2], "big")) if payload else "1005"
                    elif b"rate_limited" in payload:
                        warnings += 1
                if kind == "rate":
                    tick += 1 / 200
                    time.sleep(max(0.0, tick - time.monotonic()))
            if code in ("reset", "eof"):  # a close frame may still be in the receive buffer
                with contextlib.suppress(OSError):
                    sock.settimeout(0.2)
                    while data := sock.recv(65536):
                        rest += data
                for opcode, payload in read_frames(rest):
                    if opcode == 8:
                        code = str(int.from_bytes(payload[:2], "big")) if payload else "1005"
        finally:
            reset(sock)
        lifetimes.append(time.monotonic() - opened)
        codes[code if code != "none" else "open at the end"] += 1
    lifetimes.sort()
    return {
        "kind": kind,
        "seconds": seconds,
        "connections": len(lifetimes),
        "handshakes_refused": refused,
        "frames_sent": frames,
        "frames_per_s": round(frames / seconds),
        "big_bytes_sent": bytes_sent,
        "rate_limited_warnings": warnings,
        "close_codes": dict(codes),
        "lifetime_ms_p50": round(lifetimes[len(lifetimes) // 2] * 1000, 1) if lifetimes else None,
        "lifetime_ms_max": round(lifetimes[-1] * 1000, 1) if lifetimes else None,
    }


# --- orchestration and tables -----------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded, or None."""
    return round(a / b, 2) if a and b else None


def abuse(quick: bool) -> str:
    """Run both parts; write ``bench/results/abuse[-quick].json``; return the tables."""
    cfg = settings(quick)
    procs.pin_self(procs.CLIENT_CPU)
    procs.raise_nofile_limit()
    started = time.monotonic()
    names = [BASELINE, PLAYHOUSE] if cfg.baseline else [PLAYHOUSE]
    slow_rows, flood_rows = [], []
    with tempfile.TemporaryDirectory(prefix="playhouse-bench-abuse-") as tmp:
        logdir = Path(tmp)
        with procs.redis_server(logdir) as redis:
            redis_port = redis.port
            for name in names:
                if cfg.quiet_wait:
                    procs.wait_quiet(0.3, max_wait=cfg.quiet_wait)
                try:
                    with server(name, logdir, redis_port, cfg) as (port, pid):
                        row = slow_part(name, port, pid, redis_port, cfg)
                except (BenchError, OSError, RuntimeError) as exc:
                    row = {"server": name, "error": repr(exc)}
                log(f"slow clients, {name}: {row}")
                slow_rows.append(row)
            for name in names:
                if cfg.quiet_wait:
                    procs.wait_quiet(0.3, max_wait=cfg.quiet_wait)
                try:
                    with server(name, logdir, redis_port, cfg) as (port, pid):
                        row = flood_part(name, port, pid, redis_port, cfg, logdir)
                except (BenchError, OSError, RuntimeError) as exc:
                    row = {"server": name, "error": repr(exc)}
                log(f"flooders, {name}: {row}")
                flood_rows.append(row)
    report = {
        "scenario": "abuse",
        "quick": quick,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "seconds": round(time.monotonic() - started, 1),
        "settings": cfg.__dict__,
        "slow": slow_rows,
        "flood": flood_rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "abuse-quick.json" if quick else "abuse.json"
    (RESULTS / name).write_text(json.dumps(report, indent=2) + "\n")
    return tables(cfg, slow_rows, flood_rows)


def fmt(value: Any, spec: str = "") -> str:
    """Table cell: formatted number, or an em dash when missing."""
    return "—" if value is None else format(value, spec)


def tables(cfg: Settings, slow_rows: list[dict[str, Any]], flood_rows: list[dict[str, Any]]) -> str:
    """The two Markdown tables and the verdicts."""
    base = {r["server"]: r for r in slow_rows}.get(BASELINE, {})
    out = [
        f"N = {cfg.n:,} subscribers, {cfg.slow} of them slow; {cfg.rate:g} msg/s of "
        f"{cfg.payload:,} B.",
        "",
        "| server | window | s | deliveries/s | p50 ms | p99 ms | p99 vs clean | p99 vs baseline "
        "| RSS KB before | peak | after | growth KB/slow | 1013 all by s | first drop s "
        "| TCP closed s (min-max) | kernel Send-Q peak MB | server CPU | other CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in slow_rows:
        if "error" in r:
            out.append(f"| {r['server']} | error: {r['error']} |" + " |" * 16)
            continue
        c, s = r["clean"], r["slow"]
        b = base.get("slow", {}) if base and r is not base else {}
        bc = base.get("clean", {}) if base and r is not base else {}
        closed = s["tcp_closed_s"]
        span = f"{closed[0]}-{closed[-1]}" if closed else "—"
        if s["tcp_still_open"]:
            span += f" ({s['tcp_still_open']} still open)"
        out.append(
            f"| {r['server']} | clean | {c['seconds']} | {c['deliveries_per_s']:,} "
            f"| {fmt(c['p50_ms'])} | {fmt(c['p99_ms'])} | "
            f"| {fmt(ratio(c['p99_ms'], bc.get('p99_ms')))} "
            f"| {c['rss_kb_start']:,} | {c['rss_kb_peak']:,} | {c['rss_kb_end']:,} | | | | | "
            f"| {c['server_cpu']:.0%} | {c.get('other_cpu', 0):.0%} |"
        )
        out.append(
            f"| {r['server']} | {cfg.slow} stop reading | {s['seconds']} "
            f"| {s['deliveries_per_s']:,} | {fmt(s['p50_ms'])} | {fmt(s['p99_ms'])} "
            f"| {fmt(ratio(s['p99_ms'], c['p99_ms']))} "
            f"| {fmt(ratio(s['p99_ms'], b.get('p99_ms')))} "
            f"| {s['rss_kb_before']:,} | {s['rss_kb_peak']:,} | {s['rss_kb_after']:,} "
            f"| {s['rss_growth_kb_per_slow']:,} | {fmt(s['all_1013_s'])} "
            f"| {fmt(s['first_drop_s'])} "
            f"| {span} | {s['kernel_peak_send_q_kb'] / 1024:.1f} | {s['server_cpu']:.0%} "
            f"| {s.get('other_cpu', 0):.0%} |"
        )
        a = r.get("after")
        if a:
            out.append(
                f"| {r['server']} | after | {a['seconds']} | {a['deliveries_per_s']:,} "
                f"| {fmt(a['p50_ms'])} | {fmt(a['p99_ms'])} "
                f"| {fmt(ratio(a['p99_ms'], c['p99_ms']))} "
                f"| | {a['rss_kb_start']:,} | {a['rss_kb_peak']:,} | {a['rss_kb_end']:,} "
                f"| | | | | | {a['server_cpu']:.0%} | {a.get('other_cpu', 0):.0%} |"
            )
    out += [
        "",
        "| server | window | deliveries/s | p50 ms | p99 ms | p99 vs clean | server CPU "
        "| other CPU "
        "| rate flooder: conns, frames/s, closes, lifetime p50 ms | big flooder: conns, closes, "
        "MB written |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in flood_rows:
        if "error" in r:
            out.append(f"| {r['server']} | error: {r['error']} |" + " |" * 8)
            continue
        c, f = r["clean"], r["flood"]
        rate, big = f["flooders"].get("rate", {}), f["flooders"].get("big", {})
        out.append(
            f"| {r['server']} | clean | {c['deliveries_per_s']:,} | {fmt(c['p50_ms'])} "
            f"| {fmt(c['p99_ms'])} | | {c['server_cpu']:.0%} | {c.get('other_cpu', 0):.0%} | | |"
        )
        out.append(
            f"| {r['server']} | flooders | {f['deliveries_per_s']:,} | {fmt(f['p50_ms'])} "
            f"| {fmt(f['p99_ms'])} | {fmt(ratio(f['p99_ms'], c['p99_ms']))} "
            f"| {f['server_cpu']:.0%} | {f.get('other_cpu', 0):.0%} "
            f"| {rate.get('connections')}, {rate.get('frames_per_s')}, "
            f"{rate.get('close_codes')}, {rate.get('lifetime_ms_p50')} "
            f"| {big.get('connections')}, {big.get('close_codes')}, "
            f"{round(big.get('big_bytes_sent', 0) / 1e6, 1)} |"
        )
        x = r.get("flood_nonexempt")
        if x:
            xr, xb = x["flooders"].get("rate", {}), x["flooders"].get("big", {})
            out.append(
                f"| {r['server']} | flooders from {NON_EXEMPT} | {x['deliveries_per_s']:,} "
                f"| {fmt(x['p50_ms'])} | {fmt(x['p99_ms'])} "
                f"| {fmt(ratio(x['p99_ms'], c['p99_ms']))} "
                f"| {x['server_cpu']:.0%} | {x.get('other_cpu', 0):.0%} "
                f"| {xr.get('connections')} (+{xr.get('handshakes_refused')} refused), "
                f"{xr.get('frames_per_s')}, {xr.get('close_codes')}, {xr.get('lifetime_ms_p50')} "
                f"| {xb.get('connections')} (+{xb.get('handshakes_refused')} refused), "
                f"{xb.get('close_codes')}, {round(xb.get('big_bytes_sent', 0) / 1e6, 1)} |"
            )
        a = r.get("after")
        if a:
            out.append(
                f"| {r['server']} | after | {a['deliveries_per_s']:,} | {fmt(a['p50_ms'])} "
                f"| {fmt(a['p99_ms'])} | {fmt(ratio(a['p99_ms'], c['p99_ms']))} "
                f"| {a['server_cpu']:.0%} | {a.get('other_cpu', 0):.0%} | | |"
            )
    out.append("")
    out += verdicts(slow_rows, flood_rows)
    return "\n".join(out)


def verdicts(slow_rows: list[dict[str, Any]], flood_rows: list[dict[str, Any]]) -> list[str]:
    """One line per target, for Playhouse."""
    out = []
    slow = next((r for r in slow_rows if r["server"] == PLAYHOUSE and "error" not in r), None)
    if slow:
        s, c = slow["slow"], slow["clean"]
        p99 = ratio(s["p99_ms"], c["p99_ms"])
        growth = s["rss_growth_kb_per_slow"]
        closes = s["all_1013_s"]
        since_drop = round(closes - s["first_drop_s"], 1) if closes and s["first_drop_s"] else None
        out.append(
            f"- RSS growth per slow client {growth:,} KB (target ≤ {TARGET_RSS_PER_SLOW_KB}): "
            f"{'met' if growth <= TARGET_RSS_PER_SLOW_KB else 'missed'}"
        )
        in_time = since_drop is not None and since_drop <= TARGET_CLOSE_S + SCRAPE_EVERY
        out.append(
            f"- all slow clients closed (1013) {fmt(closes)} s after they stopped reading, "
            f"{fmt(since_drop)} s after the first drop (target ≤ {TARGET_CLOSE_S:g} s after "
            f"falling behind, ±{SCRAPE_EVERY:g} s): {'met' if in_time else 'missed'}"
        )
        out.append(
            f"- others' p99 with slow clients {fmt(p99)}× clean (target ≤ {TARGET_SLOW_P99}): "
            f"{'met' if p99 is not None and p99 <= TARGET_SLOW_P99 else 'missed'}"
        )
    flood = next((r for r in flood_rows if r["server"] == PLAYHOUSE and "error" not in r), None)
    if flood:
        p99 = ratio(flood["flood"]["p99_ms"], flood["clean"]["p99_ms"])
        out.append(
            f"- others' p99 with flooders {fmt(p99)}× clean (target ≤ {TARGET_FLOOD_P99}): "
            f"{'met' if p99 is not None and p99 <= TARGET_FLOOD_P99 else 'missed'}"
        )
        if "flood_nonexempt" in flood:
            p99 = ratio(flood["flood_nonexempt"]["p99_ms"], flood["clean"]["p99_ms"])
            out.append(
                f"- the same, flooders on {NON_EXEMPT} (per-IP limits apply): {fmt(p99)}× clean: "
                f"{'met' if p99 is not None and p99 <= TARGET_FLOOD_P99 else 'missed'}"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.abuse --flooder rate|big --port P --seconds S``: one flooder, JSON out."""
    parser = argparse.ArgumentParser(prog="python -m bench.abuse", description=__doc__)
    parser.add_argument("--flooder", choices=("rate", "big"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--source", default="", help="local address to connect from")
    args = parser.parse_args(argv)
    print(json.dumps(flood(args.flooder, args.port, args.seconds, args.source)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
