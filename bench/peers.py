"""Peers: python-socketio + Redis and Django Channels + channels_redis, same workloads, same run.

Each peer runs from its own virtualenv, ``bench/.peer-venvs/<name>``, built with ``python3 -m
venv`` from the exact pins in ``bench/peer_servers/requirements-<name>.txt`` (neither is a
dependency of the project); a stamp file (the pins' SHA-256) lets later runs reuse it (delete
the folder to force a rebuild). Servers run pinned to the server CPU, Redis and the clients on
the other one, as in ``fanout``; the broadcast runs share one throw-away ``redis-server``,
flushed before each run, and every relay run gets a fresh one.

* **Broadcast**: the fan-out load generator (``bench/loadgen.py``, the same windowed 100-byte
  payloads) against ``playhouse-redis``, the bare-Tornado baseline and the peers, interleaved
  (A, B, C, D, A, ...) like :func:`bench.scenarios.measure_all`. Channels takes our raw frames
  unchanged; Socket.IO needs its framing: the Engine.IO/Socket.IO handshake (client ``40``; the
  server's ``0{...}`` open and ``40{...}`` connect packets are read and not counted) and every
  payload inside ``42["m","…"]`` (10 bytes more per frame, 112 instead of 102).
* **Game relay**: ``bench/relay.py``'s clients and rate steps (pairs of players, each move acked
  to the mover and relayed as ``state`` to both through the framework's Redis layer), against our
  server (which checks and stores every move in MongoDB) and against the bare-Tornado relay and
  the peers, which store nothing: the comparison is conservative for us.

Full run: broadcast at N=5,000, then the relay on a short rate ladder up to every peer's
saturation (:func:`settings`). ``--quick`` runs the broadcast only, at N=200 (about 11 s); the
first run ever also builds the two virtualenvs (about 40 s, once), which the quick run's 2-minute
budget and ``--list``'s figure leave out.

See ``bench/peer_servers/*.py`` for exactly what each peer does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import psutil  # type: ignore[import-untyped]

from bench import gameclients, procs, relay
from bench import scenarios as fan
from bench.gameclients import ClientError, Running, WsClient

PEER_DIR = fan.ROOT / "bench" / "peer_servers"
VENVS = fan.ROOT / "bench" / ".peer-venvs"
SOCKETIO = "socketio-redis"
CHANNELS = "channels-redis"
CHANNELS_PUBSUB = "channels-pubsub"
TARGETS = {SOCKETIO: 10.0, CHANNELS: 30.0}  # broadcast: playhouse-redis ÷ peer at least this
RELAY_TARGET = 3.0  # game relay: at least this × each peer
REDIS_POOL = 100_000
"""Redis pool size given to the peers: redis-py 8 caps a pool at 100 connections and raises
past it (earlier releases had no cap), which a burst of Channels connects exceeds."""
PEER_PING = 86_400  # s: heartbeats off, as ``playhouse_spec`` turns ours off
SIO_PATH = "/socket.io/?EIO=4&transport=websocket"
SIO_EVENT = b'42["msg",'  # a Socket.IO event packet carrying one relay message
QUICK_SETTLE = 0.5  # s idle after connecting, before RSS is read (loadgen's default: 1 s)
QUICK_DRAIN = 1.0  # s the last deliveries are waited for (loadgen's default: 5 s)


NOTES = [
    "Same 100-byte payload everywhere; Socket.IO frames carry 10 bytes of framing more "
    '(42["m","…"]: 112 bytes instead of 102), its handshake packets are not counted.',
    "Peers run the framework's idiomatic Redis path: python-socketio 5 delivers to this "
    "host's clients and then PUBLISHes for other hosts (no Redis round trip on the delivery "
    "path); Channels' group_send goes through Redis (core layer: one sorted-set entry per "
    "process and group_send; pubsub layer: one PUBLISH). playhouse-redis delivers through a "
    "Redis PUBLISH/SUBSCRIBE round trip.",
    "Game relay: the peers relay and ack without checking or storing anything; our server "
    "checks each move and stores it in MongoDB (nx-27017) before it acks: the ratio is "
    "conservative for us.",
    "Peers' Redis pool: max_connections=100000 (redis-py 8 caps a pool at 100 and raises); "
    "heartbeats off on every server (Engine.IO pings, daphne pings, ours).",
]


# --- virtualenvs --------------------------------------------------------------------------------


def ensure_venv(name: str) -> Path:
    """``bench/.peer-venvs/<name>`` with ``requirements-<name>.txt`` installed; returns its
    ``bin`` folder. Rebuilt only when the pinned file changed (a stamp holds its SHA-256)."""
    requirements = PEER_DIR / f"requirements-{name}.txt"
    venv = VENVS / name
    stamp = venv / ".requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if (venv / "bin" / "python").exists() and stamp.exists() and stamp.read_text() == digest:
        return venv / "bin"
    python3 = shutil.which("python3") or sys.executable
    started = time.monotonic()
    fan.log(f"peers: building {venv} from {requirements.name}")
    shutil.rmtree(venv, ignore_errors=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    for cmd in ([python3, "-m", "venv", str(venv)], [*pip, "install", "-r", str(requirements)]):
        done = subprocess.run(cmd, capture_output=True, timeout=900, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr.decode()[-2000:]}")
    stamp.write_text(digest)
    fan.log(f"peers: {venv.name} venv ready in {time.monotonic() - started:.0f}s")
    return venv / "bin"


# --- the servers under test ---------------------------------------------------------------------


@dataclass
class Peer:
    """A server under test and how the load generator talks to it."""

    spec: fan.ServerSpec
    loadgen_args: list[str] = field(default_factory=list)
    relay_path: Callable[[str, int], str] | None = None  # (game, seat) -> socket path
    socketio: bool = False  # relay clients speak Socket.IO


def socketio_peer(bin_dir: Path, redis_url: str) -> Peer:
    """python-socketio's ``AsyncServer`` with ``AsyncRedisManager``, on aiohttp."""
    script = str(PEER_DIR / "socketio_server.py")
    url = f"{redis_url}?max_connections={REDIS_POOL}"
    spec = fan.ServerSpec(
        SOCKETIO,
        lambda port: [str(bin_dir / "python"), script, "--port", str(port), "--redis", url,
                      "--ping-interval", str(PEER_PING)],
    )  # fmt: skip
    framing = ["--path", SIO_PATH, "--preamble", "40", "--preamble-replies", "2",
               "--frame-prefix", '42["m","', "--frame-suffix", '"]']  # fmt: skip
    return Peer(spec, framing, lambda game, seat: f"{SIO_PATH}&game={game}&seat={seat}", True)


def channels_peer(bin_dir: Path, redis_url: str, layer: str) -> Peer:
    """Django Channels consumers on daphne, ``core`` or ``pubsub`` channels_redis layer."""
    env = {
        "PYTHONPATH": str(PEER_DIR),
        "PEER_REDIS_URL": f"{redis_url}?max_connections={REDIS_POOL}",
        "PEER_CHANNEL_LAYER": layer,
    }
    spec = fan.ServerSpec(
        CHANNELS if layer == "core" else CHANNELS_PUBSUB,
        lambda port: [str(bin_dir / "daphne"), "-e",
                      f"tcp:port={port}:interface={procs.HOST}:backlog=4096",
                      "--ping-interval", str(PEER_PING), "--ping-timeout", str(PEER_PING),
                      "-v", "0", "channels_server:application"],
        env,
    )  # fmt: skip
    return Peer(spec, relay_path=lambda game, seat: f"/relay/{game}?seat={seat}")


def peer_list(layers: tuple[str, ...], redis_url: str, skipped: dict[str, str]) -> list[Peer]:
    """Our server, the bare-Tornado baseline and the peers (Channels once per ``layers``).
    A peer whose virtualenv cannot be built is left out, with the reason in ``skipped``."""
    servers = [Peer(fan.playhouse_spec(fan.REDIS, redis_url)), Peer(fan.BASELINE_SPEC)]
    for name in ("socketio", "channels"):
        try:
            bin_dir = ensure_venv(name)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            fan.log(f"peers: no {name} virtualenv, {name} left out: {exc}")
            skipped[name] = str(exc)[-2000:]
            continue
        if name == "socketio":
            servers.append(socketio_peer(bin_dir, redis_url))
        else:
            servers += [channels_peer(bin_dir, redis_url, layer) for layer in layers]
    return servers


@dataclass
class PeerSettings:
    """Broadcast knobs (as ``fanout``'s, with a shorter quick window) and relay knobs."""

    broadcast: fan.Settings
    relay: relay.Settings | None  # None: no relay part (quick)
    layers: tuple[str, ...] = ("core",)  # channels_redis layers run ("core", "pubsub")


def settings(quick: bool) -> PeerSettings:
    """Full: broadcast at N=5,000 with ``fanout``'s 2 s + 5 s windows, one usable run per server
    (an errored or noisy run retried at most twice, after up to 30 s waiting for a quiet
    machine); then the relay with 500 games on a short ladder, 0.1, 0.3, 1 and 3 moves/s per
    player (100 to 3,000 moves/s offered: past every peer's saturation and the bare relay's),
    1 s warm-up + 5 s per step, stopping at saturation. Channels' pub/sub layer
    (``channels-pubsub``) is left out of the full run for time (``layers``).

    Quick: broadcast only, N=200 for 0.2 s + 0.5 s, one run each, no retry, no wait; no relay.
    The first run ever also builds the two peer virtualenvs (about 40 s, once): that is not
    part of the quick run's expected time."""
    if not quick:
        broadcast = fan.Settings(
            sizes=(5000,), warmup=2.0, duration=5.0, repeats=1, quiet_wait=30.0, retries=2
        )
        game_relay = relay.Settings(
            games=500,
            rates=(0.1, 0.3, 1.0, 3.0),
            step_seconds=5.0,
            warmup=1.0,
            quiet_wait=10.0,
            attempts=relay.MAX_ATTEMPTS,
        )
        return PeerSettings(broadcast, game_relay, layers=("core",))
    return PeerSettings(
        fan.Settings(sizes=(200,), warmup=0.2, duration=0.5, repeats=1, quiet_wait=0.0, retries=0),
        None,
        layers=("core",),
    )


# --- broadcast ----------------------------------------------------------------------------------


def loadgen_command(
    peer: Peer, port: int, pid: int, n: int, cfg: fan.Settings, quick: bool
) -> list[str]:
    """``bench.loadgen`` with ``fanout``'s window and pacing, plus the peer's framing."""
    window = max(4, fan.OUTSTANDING_DELIVERIES // n)
    settle = ["--settle", str(QUICK_SETTLE), "--drain-timeout", str(QUICK_DRAIN)] if quick else []
    return [
        sys.executable, "-m", "bench.loadgen", "--port", str(port), "--server-pid", str(pid),
        "--n", str(n), "--window", str(window), "--warmup", str(cfg.warmup),
        "--duration", str(cfg.duration), "--pause", str(fan.POLL_PAUSE),
        "--cpu", str(procs.CLIENT_CPU), *settle, *peer.loadgen_args,
    ]  # fmt: skip


def flush_redis(url: str) -> None:
    """``FLUSHALL``: no group or channel a previous server left behind (channels_redis keeps
    group members for a day) weighs on the next run."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
        if not sock.recv(64).startswith(b"+OK"):
            raise RuntimeError("Redis FLUSHALL failed")


def measure_once(
    peer: Peer, n: int, cfg: fan.Settings, logdir: Path, redis: tuple[str, int], quick: bool
) -> dict[str, Any]:
    """A fresh server on a flushed Redis, one load-generator run (Redis and the server's
    children, e.g. nx-27017, count as helpers: their CPU is reported, not taken for noise)."""
    redis_url, redis_pid = redis
    flush_redis(redis_url)
    port = procs.free_port()
    logfile = logdir / f"{peer.spec.name}-{n}-{port}.log"
    server = procs.start(
        peer.spec.command(port), logfile, procs.SERVER_CPU, peer.spec.env, fan.ROOT
    )
    try:
        procs.wait_http_ok(server, port, "/healthz", timeout=30)
        helpers = [redis_pid, *(c.pid for c in psutil.Process(server.pid).children(True))]
        cmd = loadgen_command(peer, port, server.pid, n, cfg, quick)
        cmd += [arg for pid in helpers for arg in ("--helper-pid", str(pid))]
        budget = 60 + n / 50 + cfg.warmup + cfg.duration
        done = subprocess.run(cmd, cwd=fan.ROOT, capture_output=True, timeout=budget, check=False)
        lines = done.stdout.decode().strip().splitlines()
        result: dict[str, Any] = json.loads(lines[-1]) if lines else {"error": "no output"}
        if done.returncode != 0 and "error" not in result:
            result["error"] = done.stderr.decode()[-500:]
        with contextlib.suppress(psutil.Error):
            result["server_rss_mb"] = round(psutil.Process(server.pid).memory_info().rss / 2**20)
    except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError, psutil.Error) as exc:
        result = {"n": n, "error": f"{exc!r}\n{procs.tail(logfile)}"}
    finally:
        died = server.poll()
        procs.stop(server)
    if died is not None:
        result["error"] = f"server exited during the run (status {died}) {result.get('error', '')}"
    return result


def measure_all(
    peers: list[Peer],
    n: int,
    cfg: fan.Settings,
    logdir: Path,
    redis: tuple[str, int],
    quick: bool,
) -> list[dict[str, Any]]:
    """:func:`bench.scenarios.measure_all` for peers: interleaved, each run started on a quiet
    machine, errored or noisy runs retried ``cfg.retries`` times at most (quick: none)."""
    runs: dict[str, list[dict[str, Any]]] = {p.spec.name: [] for p in peers}
    for attempt in range(cfg.repeats + cfg.retries):
        for peer in peers:
            name = peer.spec.name
            if sum(map(fan.usable, runs[name])) >= cfg.repeats:
                continue
            busy = None if quick else procs.wait_quiet(fan.NOISY_OTHER_CPU, cfg.quiet_wait)
            run = measure_once(peer, n, cfg, logdir, redis, quick)
            run["machine_busy_before"] = busy and round(busy, 2)
            fan.log(f"peers: {name} N={n} run {attempt + 1}: {run}")
            runs[name].append(run)
    return [fan.summarize(p.spec.name, n, runs[p.spec.name]) for p in peers]


def broadcast_ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """``vs_playhouse`` (playhouse-redis ÷ row) in every row; per N, the ratio to each server."""
    rate = {(r["server"], r["n"]): r.get("deliveries_per_s") for r in rows}
    out: dict[str, dict[str, float | None]] = {}
    for row in rows:
        row["vs_playhouse"] = fan.ratio(
            rate.get((fan.REDIS, row["n"])), row.get("deliveries_per_s")
        )
        out.setdefault(str(row["n"]), {})[row["server"]] = row["vs_playhouse"]
    return out


# --- game relay ---------------------------------------------------------------------------------


class SocketIOClient(WsClient):
    """:class:`bench.gameclients.WsClient` speaking Socket.IO: it joins namespace ``/`` (sends
    ``40`` on the Engine.IO open packet, waits for the server's ``40{...}``), answers Engine.IO
    pings, and carries each relay message as a ``msg`` event, ``42["msg",<json>]``."""

    def __init__(self, on_text: gameclients.OnText) -> None:
        super().__init__(self._on_packet)
        self._deliver = on_text
        self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _on_packet(self, payload: bytes, now: int) -> None:
        if payload.startswith(SIO_EVENT):
            self._deliver(payload[len(SIO_EVENT) : -1], now)
        elif payload.startswith(b"40"):
            if not self.joined.done():
                self.joined.set_result(None)
        elif payload.startswith(b"0"):
            self.send_text(b"40")
        elif payload == b"2":
            self.send_text(b"3")

    def send_json(self, message: Any) -> None:
        """Send ``message`` as a ``msg`` event."""
        self.send_text(SIO_EVENT + orjson.dumps(message) + b"]")

    @classmethod
    async def connect(
        cls,
        port: int,
        path: str,
        on_text: gameclients.OnText,
        *,
        cookie: str = "",
        timeout: float = 30.0,
    ) -> WsClient:
        """Open the WebSocket, then wait until the namespace is joined."""
        client = await super().connect(port, path, on_text, cookie=cookie, timeout=timeout)
        assert isinstance(client, SocketIOClient)
        try:
            await asyncio.wait_for(asyncio.shield(client.joined), timeout)
        except TimeoutError as exc:
            client.abort()
            raise ClientError(f"socket.io {path}: no connect packet in {timeout}s") from exc
        return client


async def peer_relay_run(running: Running, cfg: relay.Settings, peer: Peer) -> dict[str, Any]:
    """Play ``bench.relay``'s games against a peer; a game is just a fresh room/group id."""
    assert peer.relay_path is not None
    path, counter = peer.relay_path, [0]

    async def new_game(pair: int) -> tuple[str, tuple[str, str], tuple[str, str], tuple[str, str]]:
        counter[0] += 1
        game_id = f"g{pair}x{counter[0]}"
        return game_id, ("p-0", "p-1"), (path(game_id, 0), path(game_id, 1)), ("", "")

    run = relay.Run()
    client = SocketIOClient if peer.socketio else WsClient
    with mock.patch.object(relay, "WsClient", client):  # open_game's client class
        rows, games = await relay.play_steps(run, running, cfg, cfg.games, new_game)
    for game in games:
        game.close()  # so that the server stops at once, not after its shutdown timeout
    await asyncio.sleep(0.1)
    return relay.summary(run, rows, games, relay.check_seats(games))


@contextmanager
def peer_server(peer: Peer, redis_url: str, logdir: Path) -> Iterator[Running]:
    """A fresh Redis and the peer on top of it (the peer's spec is rebuilt for that Redis)."""
    with procs.redis_server(logdir) as redis_server:
        url, redis_proc = redis_server.url, redis_server.proc
        spec = rebind(peer, redis_url, url).spec
        port = procs.free_port()
        logfile = logdir / f"relay-{spec.name}-{port}.log"
        proc = procs.start(spec.command(port), logfile, procs.SERVER_CPU, spec.env, fan.ROOT)
        try:
            procs.wait_http_ok(proc, port, "/healthz", timeout=30)
            helpers = {"redis": psutil.Process(redis_proc.pid)}
            yield Running(port, psutil.Process(proc.pid), helpers, logfile)
        finally:
            stopping = time.monotonic()
            procs.stop(proc)
            fan.log(f"peers: {spec.name} stopped in {time.monotonic() - stopping:.1f}s")


def rebind(peer: Peer, old_url: str, new_url: str) -> Peer:
    """The same peer pointed at another Redis."""
    spec = peer.spec
    env = {k: v.replace(old_url, new_url) for k, v in spec.env.items()}

    def command(port: int) -> list[str]:
        return [arg.replace(old_url, new_url) for arg in spec.command(port)]

    return Peer(
        fan.ServerSpec(spec.name, command, env), peer.loadgen_args, peer.relay_path, peer.socketio
    )


def relay_one(
    peer: Peer, redis_url: str, cfg: relay.Settings, logdir: Path, quick: bool
) -> dict[str, Any]:
    """One server through the rate steps; ours and the bare relay run as ``relay`` runs them."""
    if peer.relay_path is None:
        own = relay.PLAYHOUSE if peer.spec.name == fan.REDIS else relay.BASELINE
        return relay.measure(own, cfg, logdir)
    if not quick:
        procs.wait_quiet(gameclients.NOISY, max_wait=3 * cfg.quiet_wait)
    with peer_server(peer, redis_url, logdir) as running:
        return asyncio.run(peer_relay_run(running, cfg, peer))


def relay_all(
    peers: list[Peer], redis_url: str, cfg: relay.Settings, logdir: Path, quick: bool
) -> dict[str, dict[str, Any]]:
    """Every server through the same rate steps, one after the other (quick: no bare-Tornado
    relay); a step measured on a busy machine is repeated up to ``cfg.attempts`` times."""
    results: dict[str, dict[str, Any]] = {}
    names = {fan.REDIS: relay.PLAYHOUSE, fan.BASELINE: relay.BASELINE}
    for peer in peers:
        name = names.get(peer.spec.name, peer.spec.name)
        if quick and name == relay.BASELINE:
            continue
        try:
            results[name] = relay_one(peer, redis_url, cfg, logdir, quick)
        except (RuntimeError, ClientError, TimeoutError, OSError) as exc:
            fan.log(f"peers: relay {name} failed: {exc!r}")
            results[name] = {"error": repr(exc)[:2000], "rows": [], "max_achieved_per_s": 0}
    return results


def knee(result: dict[str, Any]) -> float | None:
    """Highest offered moves/s still served: ≥ 85 % achieved and relay p99 ≤ 15 ms."""
    good = [
        r["offered_per_s"]
        for r in result.get("rows", [])
        if r["achieved_per_s"] >= relay.SATURATED_SHARE * r["offered_per_s"]
        and (r["relay_p99_ms"] or float("inf")) <= relay.TARGET_P99_MS
    ]
    return max(good, default=None)


def relay_ratios(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per server: the knee, the best throughput, and our ratios of both to it."""
    ours = results.get(relay.PLAYHOUSE, {})
    out = {}
    for name, result in results.items():
        result["knee_per_s"] = knee(result)
        out[name] = {
            "knee_per_s": result["knee_per_s"],
            "max_achieved_per_s": result.get("max_achieved_per_s"),
            "saturated": result.get("saturated"),
            "playhouse_max_ratio": fan.ratio(
                ours.get("max_achieved_per_s"), result.get("max_achieved_per_s")
            ),
            "playhouse_knee_ratio": fan.ratio(knee(ours) if ours else None, result["knee_per_s"]),
        }
    return out


# --- report -------------------------------------------------------------------------------------


def broadcast_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown rows of the broadcast comparison."""
    fmt = fan.fmt
    out = [
        "| server | N | deliveries/s | min-max of runs | playhouse-redis ÷ this | p50 ms | p99 ms "
        "| server CPU | Redis (+ nx-27017) CPU | server RSS MB | RSS KB/idle conn "
        "| frame bytes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['server']} | {r['n']:,} | error: see JSON |" + " |" * 9)
            continue
        spread = r["deliveries_per_s_runs"]
        out.append(
            f"| {r['server']} | {r['n']:,} | {fmt(r['deliveries_per_s'], ',')} "
            f"| {min(spread):,}-{max(spread):,} | {fmt(r['vs_playhouse'], '.2f')}× "
            f"| {fmt(r['p50_ms'], '.1f')} | {fmt(r['p99_ms'], '.1f')} "
            f"| {fmt(r['server_cpu'], '.0%')} | {fmt(r.get('helper_cpu'), '.0%')} "
            f"| {fmt(r.get('server_rss_mb'))} | {fmt(r['rss_kb_per_conn'], '.1f')} "
            f"| {r.get('frame_bytes', '')} |"
        )
    return out


def target_lines(ratios: dict[str, dict[str, float | None]]) -> list[str]:
    """Whether playhouse-redis reached the issue's broadcast targets, per N."""
    out = []
    for n, by_server in ratios.items():
        for name, target in TARGETS.items():
            value = by_server.get(name)
            verdict = "—" if value is None else "met" if value >= target else "missed"
            out.append(
                f"Broadcast N={int(n):,}: playhouse-redis = {fan.fmt(value, '.2f')}× {name} "
                f"(target ≥ {target:g}×): {verdict}."
            )
    return out


def relay_table(results: dict[str, dict[str, Any]], ratios: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown rows of the relay comparison, then the knees and our ratios."""
    fmt = gameclients.fmt
    out = [
        "| server | games | moves/s per player | offered moves/s | achieved | relay p50 / p99 ms "
        "| RTT p50 / p99 ms | errors | server CPU | Redis CPU | nx-27017 CPU | server RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        if "error" in result:
            out.append(f"| {name} | error: {result['error'][:120]} |" + " |" * 10)
        for r in result.get("rows", []):
            out.append(
                f"| {name} | {r['games']} | {r['rate_per_player']:g} | {r['offered_per_s']:,} "
                f"| {r['achieved_per_s']:,} | {fmt(r['relay_p50_ms'])} / {fmt(r['relay_p99_ms'])} "
                f"| {fmt(r['rtt_p50_ms'])} / {fmt(r['rtt_p99_ms'])} | {r['errors']} "
                f"| {r.get('server_cpu', 0):.0%} | {r.get('redis_cpu', 0):.0%} "
                f"| {fmt(r.get('mongo_cpu'), '.0%')} | {fmt(r.get('server_rss_mb'))} |"
            )
    out.append("")
    ours = ratios.get(relay.PLAYHOUSE, {})
    for name, r in ratios.items():
        if name == relay.PLAYHOUSE:
            continue
        out.append(
            f"Relay vs {name}: best moves/s {fmt(ours.get('max_achieved_per_s'))} "
            f"vs {fmt(r['max_achieved_per_s'])} = {fmt(r['playhouse_max_ratio'])}× "
            f"(target ≥ {RELAY_TARGET:g}×: {relay_verdict(ours, r)}); knee (relay p99 ≤ "
            f"{relay.TARGET_P99_MS:g} ms) {fmt(ours.get('knee_per_s'))} vs "
            f"{fmt(r['knee_per_s'])} moves/s."
        )
    for name, result in results.items():
        checks = {k: v for k, v in result.get("checks", {}).items() if k != "examples"}
        out.append(f"{name}: errors {result.get('errors') or 'none'}; checks {checks}.")
    return out


def relay_verdict(ours: dict[str, Any], peer: dict[str, Any]) -> str:
    """Judge the relay target only where the peer saturated (our best is then a lower bound
    of our capacity unless we saturated too)."""
    value = peer["playhouse_max_ratio"] or 0.0
    if not peer["saturated"]:
        return "not judged, the peer did not saturate"
    if value >= RELAY_TARGET:
        return "met" if ours.get("saturated") else "met (we did not saturate: a lower bound)"
    return "missed" if ours.get("saturated") else "not judged, we did not saturate"


def versions() -> dict[str, list[str]]:
    """The pinned peer requirements, as run."""
    return {
        name: [
            line
            for line in (PEER_DIR / f"requirements-{name}.txt").read_text().splitlines()
            if line and not line.startswith("#")
        ]
        for name in ("socketio", "channels")
    }


def peers(quick: bool) -> str:
    """Broadcast then relay, ours vs the peers; write ``bench/results/peers[-quick].json``."""
    cfg = settings(quick)
    procs.pin_self(procs.CLIENT_CPU)
    procs.raise_nofile_limit()
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        logdir = Path(tmp)
        with procs.redis_server(logdir) as redis_server:
            url, redis_proc = redis_server.url, redis_server.proc
            server_list = peer_list(cfg.layers, url, skipped)
            for n in cfg.broadcast.sizes:
                redis = (url, redis_proc.pid)
                rows += measure_all(server_list, n, cfg.broadcast, logdir, redis, quick)
        order = [p.spec.name for p in server_list]
        rows.sort(key=lambda r: (r["n"], order.index(r["server"])))
        ratios = broadcast_ratios(rows)
        results = {}
        if cfg.relay is not None:
            results = relay_all(server_list, url, cfg.relay, logdir, quick)
    relay_summary = relay_ratios(results)
    report = {
        "scenario": "peers",
        "quick": quick,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "seconds": round(time.monotonic() - started),
        "settings": {
            "broadcast": cfg.broadcast.__dict__,
            "relay": cfg.relay.__dict__ if cfg.relay is not None else None,
            "layers": cfg.layers,
        },
        "versions": versions(),
        "notes": NOTES,
        "skipped": skipped,
        "broadcast": {"ratios": ratios, "rows": rows},
        "relay": {"ratios": relay_summary, "results": results},
    }
    gameclients.write_results("peers", quick, report)
    lines = ["### Broadcast", "", *broadcast_table(rows), "", *target_lines(ratios), ""]
    lines += [f"Note: {note}" for note in NOTES]
    lines += [
        f"Left out: {name} (its virtualenv could not be built, see JSON)." for name in skipped
    ]
    if cfg.relay is None:
        lines += ["", "### Game relay", "", "Not run (quick: broadcast only)."]
    else:
        lines += ["", "### Game relay", "", *relay_table(results, relay_summary)]
    return "\n".join(lines)
