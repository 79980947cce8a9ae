"""Challenge → accept → ``game_started`` on both lobby sockets.

Pairs of registered, signed-in users keep their lobby socket open
(``/ws/lobby?subscribe-broadcast&subscribe-user``, as the lobby page does). In each round of a
pair the first player challenges the second to Tic-tac-toe (``POST /api/challenges``), the
second accepts (``POST /api/challenges/<id>/accept``) and the first resigns the new game
(``POST /api/games/<id>/resign``) so that the pair can be challenged again. Only the accept is
timed: from sending it until *both* lobby sockets have received
``{"type":"game_started","game_id":...}`` for that game. Accepts are paced at a fixed offered
rate across all pairs (one step per rate); the challenge and the resignation still load the
server in between, as would players coming back from their games.

Server: ``server.py`` with the RedisBroker (a throw-away ``redis-server``), embedded in-memory
nx-27017, bcrypt cost 4 and sign-up/login limits lifted (:data:`bench.gameclients.LOBBY_ENV`).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import procs
from bench.gameclients import (
    MAX_ATTEMPTS,
    NOISY,
    Account,
    ClientError,
    CpuMeter,
    HttpClient,
    Running,
    WsClient,
    api,
    fmt,
    log,
    noisy,
    percentiles_ms,
    playhouse,
    quiet,
    register_users,
    write_results,
)

GAME = "tictactoe"
LOBBY_PATH = "/ws/lobby?subscribe-broadcast&subscribe-user"
TARGET_P99_MS = 30.0
STARTED = b'"game_started"'


@dataclass
class Settings:
    """Knobs that differ between a full and a ``--quick`` run."""

    pairs: int
    rates: tuple[float, ...]  # offered accepts/s, one step each
    accepts: int  # timed accepts per step
    quiet_wait: float  # longest wait (s) for other processes to calm down before a step
    attempts: int = MAX_ATTEMPTS  # measurements per step: a noisy one is repeated (1: never)


def settings(quick: bool) -> Settings:
    """Full: 100 pairs, 200 accepts at each of 5 and 10/s (40 s + 20 s), a noisy step repeated
    up to twice; quick: 10 pairs, 20 accepts at 20/s, no repeat, no wait."""
    if quick:
        return Settings(pairs=10, rates=(20.0,), accepts=20, quiet_wait=0.0, attempts=1)
    return Settings(pairs=100, rates=(5.0, 10.0), accepts=200, quiet_wait=15.0)


@dataclass
class Player:
    """One user: HTTP connection, lobby socket, and the game_started messages it received."""

    account: Account
    http: HttpClient
    socket: WsClient | None = None
    started: dict[str, int] = field(default_factory=dict)  # game id -> receive time (ns)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    other_frames: int = 0

    def on_text(self, payload: bytes, now: int) -> None:
        """Note each ``game_started``; other lobby traffic (presence, challenges) is counted."""
        if STARTED in payload:
            message = orjson.loads(payload)
            if message.get("type") == "game_started":
                self.started[message["game_id"]] = now
                self.changed.set()
                return
        self.other_frames += 1


@dataclass
class Step:
    """Shared pacing and results of one offered rate."""

    rate: float
    total: int
    started_at: float = 0.0
    issued: int = 0
    latencies: list[int] = field(default_factory=list)
    http_latencies: list[int] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    retries: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    async def slot(self) -> bool:
        """Wait for the next accept's scheduled start; False once the step has issued all."""
        if self.issued >= self.total:
            return False
        index = self.issued
        self.issued += 1
        delay = self.started_at + index / self.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return True


async def both_started(a: Player, b: Player, game_id: str, timeout: float) -> int:
    """Receive time (ns) of the later of the two ``game_started`` for ``game_id``."""
    async with asyncio.timeout(timeout):
        for player in (a, b):
            while game_id not in player.started:
                player.changed.clear()
                await player.changed.wait()
    return max(a.started.pop(game_id), b.started.pop(game_id))


async def challenge_once(a: Player, b: Player, step: Step) -> str | None:
    """``a`` challenges ``b``; the challenge id, or None (counted) when it cannot be made."""
    for _attempt in range(50):
        reply = await api(
            a.http, a.account, "POST", "/api/challenges", {"to": b.account.username, "game": GAME}
        )
        if reply.status == 201:
            return str(reply.json()["id"])
        body = reply.json() or {}
        if reply.status == 409 and body.get("error") in ("unavailable", "challenge_pending"):
            step.retries += 1  # still in the last game for a moment: presence catches up
            await asyncio.sleep(0.02)
            continue
        step.error(f"challenge {reply.status} {body.get('error')}")
        return None
    step.error("challenge: still unavailable after 50 tries")
    return None


async def pair_loop(a: Player, b: Player, step: Step, first: str | None) -> None:
    """Rounds of challenge, timed accept, resign until the step has issued all its accepts.

    ``first`` is the pair's challenge made before the step (so that the step does not open
    with every pair challenging at once).
    """
    while True:
        challenge_id, first = first or await challenge_once(a, b, step), None
        if challenge_id is None:
            await asyncio.sleep(0.1)
            if step.issued >= step.total:
                return
            continue
        if not await step.slot():
            await api(a.http, a.account, "POST", f"/api/challenges/{challenge_id}/cancel")
            return
        sent = time.perf_counter_ns()
        reply = await api(b.http, b.account, "POST", f"/api/challenges/{challenge_id}/accept")
        answered = time.perf_counter_ns()
        body = reply.json() or {}
        if reply.status != 200 or body.get("type") != "game_started":
            step.error(f"accept {reply.status} {body.get('error')}")
            continue
        game_id = str(body["game_id"])
        try:
            received = await both_started(a, b, game_id, timeout=10.0)
        except TimeoutError:
            step.error("game_started not received within 10 s")
        else:
            step.latencies.append(received - sent)
            step.http_latencies.append(answered - sent)
        resign = await api(a.http, a.account, "POST", f"/api/games/{game_id}/resign")
        if resign.status != 200:
            step.error(f"resign {resign.status}")


async def measure_step(
    running: Running,
    meter: CpuMeter,
    cfg: Settings,
    pairs: list[tuple[Player, Player]],
    rate: float,
) -> dict[str, Any]:
    """``cfg.accepts`` timed accepts at ``rate`` per second across all pairs."""
    step = Step(rate=rate, total=cfg.accepts)
    gate = asyncio.Semaphore(8)

    async def prepare(a: Player, b: Player) -> str | None:
        async with gate:
            return await challenge_once(a, b, step)

    firsts = await asyncio.gather(*(prepare(a, b) for a, b in pairs))  # untimed
    await asyncio.sleep(1.0)  # the challenges' notifications go out
    step.started_at = time.monotonic() + 0.05
    meter.start()
    loops = [pair_loop(a, b, step, f) for (a, b), f in zip(pairs, firsts, strict=True)]
    await asyncio.wait_for(asyncio.gather(*loops), timeout=60 + 3 * cfg.accepts / rate)
    elapsed = time.monotonic() - step.started_at
    usage = meter.read()
    return {
        "pairs": len(pairs),
        "offered_per_s": rate,
        "accepts": len(step.latencies),
        "achieved_per_s": round(len(step.latencies) / elapsed, 1),
        **percentiles_ms(step.latencies),
        "http_p50_ms": percentiles_ms(step.http_latencies)["p50_ms"],
        "http_p99_ms": percentiles_ms(step.http_latencies)["p99_ms"],
        "errors": sum(step.errors.values()),
        "error_kinds": step.errors,
        "unavailable_retries": step.retries,
        **usage,
    }


async def run_steps(running: Running, cfg: Settings) -> tuple[list[dict[str, Any]], int]:
    """Set up the pairs (untimed), then run one step per offered rate."""
    port = running.port
    started = time.monotonic()
    names = [f"c{i:04d}{side}" for i in range(cfg.pairs) for side in "ab"]
    accounts = await register_users(port, names)
    log(f"challenge: {len(accounts)} users registered in {time.monotonic() - started:.1f}s")
    players = [Player(account, HttpClient(port)) for account in accounts]
    for player in players:
        cookie = player.account.cookie_header()
        player.socket = await WsClient.connect(port, LOBBY_PATH, player.on_text, cookie=cookie)
    await asyncio.sleep(0.5)  # let presence publish the burst of "online" diffs
    pairs = [(players[i], players[i + 1]) for i in range(0, len(players), 2)]
    rows: list[dict[str, Any]] = []
    meter = CpuMeter(running)
    try:
        for rate in cfg.rates:
            for attempt in range(1, cfg.attempts + 1):
                await quiet(meter, max_wait=cfg.quiet_wait)
                row = await measure_step(running, meter, cfg, pairs, rate)
                row["attempt"] = attempt
                log(f"challenge step: {row}")
                if row["other_cpu"] <= NOISY:
                    break
            rows.append(row)
    finally:
        lobby_frames = sum(p.other_frames for p in players)
        for player in players:
            if player.socket is not None:
                player.socket.close()
            player.http.close()
    return rows, lobby_frames


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown results table."""
    out = [
        "| pairs | offered accepts/s | achieved/s | accepts | p50 ms | p99 ms | p999 ms | max ms "
        "| HTTP reply p50 / p99 ms | errors | server CPU | nx-27017 CPU | redis CPU | client CPU "
        "| other CPU | server RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['pairs']} | {r['offered_per_s']:g} | {r['achieved_per_s']} | {r['accepts']:,} "
            f"| {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | {fmt(r['p999_ms'])} "
            f"| {fmt(r['max_ms'])} | {fmt(r['http_p50_ms'])} / {fmt(r['http_p99_ms'])} "
            f"| {r['errors']} | {r.get('server_cpu', 0):.0%} | {r.get('mongo_cpu', 0):.0%} "
            f"| {r.get('redis_cpu', 0):.0%} | {r['client_cpu']:.0%} | {noisy(r)} "
            f"| {fmt(r.get('server_rss_mb'))} |"
        )
    worst = max((r["p99_ms"] or float("inf") for r in rows), default=float("inf"))
    verdict = "met" if worst <= TARGET_P99_MS else "missed"
    out += ["", f"Target p99 ≤ {TARGET_P99_MS:g} ms at every step: {verdict} (worst {worst} ms)."]
    return "\n".join(out)


def challenge(quick: bool) -> str:
    """Run the scenario on a fresh server; write ``bench/results/challenge[-quick].json``."""
    cfg = settings(quick)
    procs.pin_self(procs.CLIENT_CPU)
    procs.raise_nofile_limit()
    procs.wait_quiet(NOISY, max_wait=cfg.quiet_wait)
    with (
        tempfile.TemporaryDirectory(prefix="bench-challenge-") as tmp,
        playhouse(Path(tmp), {}) as running,
    ):
        try:
            rows, lobby_frames = asyncio.run(run_steps(running, cfg))
        except (ClientError, TimeoutError, OSError) as exc:
            tail = procs.tail(running.logfile)
            raise RuntimeError(f"challenge failed: {exc!r}\n{tail}") from exc
        warnings = -1
        with contextlib.suppress(OSError):
            warnings = running.logfile.read_text(errors="replace").count("ERROR")
    report = {
        "scenario": "challenge",
        "quick": quick,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "settings": cfg.__dict__,
        "other_lobby_frames": lobby_frames,
        "server_log_errors": warnings,
        "rows": rows,
    }
    write_results("challenge", quick, report)
    return table(rows)
