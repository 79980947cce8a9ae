"""Idle sockets: RSS per authenticated lobby socket and connect rate, against bare Tornado.

N signed-in sockets on ``/ws/lobby?subscribe-broadcast&subscribe-user`` (as the lobby page opens
them) are opened closed-loop, at most :data:`IN_FLIGHT` handshakes at once, by
:mod:`bench.wsclients` in its own process on the client CPU; then held idle for a measured window
(pings answered, heartbeats read). Reported: RSS per socket ((RSS after the window − RSS before
the first connect) / sockets held), connect rate and handshake p50/p99/p999, server CPU while
connecting and while idle. The baseline (``bench/baseline_tornado.py``) gets the same sockets,
without cookies; servers alternate, each run on a fresh server.

Authentication: users sign up through ``POST /api/register`` (bcrypt cost 4, sign-up limit lifted:
:data:`bench.gameclients.LOBBY_ENV`); each user then holds :data:`SOCKETS_PER_USER` sockets, so
``limits.max_sockets_per_user`` is raised to twice that (default 20). Loopback is exempt from
the per-IP socket and handshake limits by default (``limits.exempt_ips``). Heartbeats and pings
keep their production settings: their cost is part of holding a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs
from bench.gameclients import (
    ROOT,
    ClientError,
    Running,
    fmt,
    log,
    playhouse,
    register_users,
    script_server,
    write_results,
)

BASELINE = "tornado-baseline"
PLAYHOUSE = "playhouse-local"
SOCKETS_PER_USER = 50
IN_FLIGHT = 100  # closed-loop handshakes outstanding while connecting
NOISY = 0.3  # cores used by other processes above which a run is flagged
TARGET_KB = 16.0
BASELINE_CMD = [sys.executable, str(ROOT / "bench" / "baseline_tornado.py"), "--port"]


@dataclass
class Settings:
    """Knobs that differ between a full and a ``--quick`` run."""

    n: int
    repeats: int
    settle: float  # idle window (s) before RSS is read
    spread: float  # storm only: reconnects spread over this many seconds
    quiet_wait: float


def settings(quick: bool) -> Settings:
    """Full: N=10,000, 3 s idle window, one run per server (after up to 10 s waiting for a
    quiet machine; a noisy run is flagged in the table); quick: N=1000, 1 s, once, no wait."""
    if quick:
        return Settings(n=1000, repeats=1, settle=1.0, spread=0.0, quiet_wait=0.0)
    return Settings(n=10_000, repeats=1, settle=3.0, spread=0.0, quiet_wait=10.0)


def users_for(n: int) -> int:
    """Users needed for ``n`` sockets at :data:`SOCKETS_PER_USER` each."""
    return max(1, -(-n // SOCKETS_PER_USER))


PLAYHOUSE_ENV = {"PLAYHOUSE_LIMITS_MAX_SOCKETS_PER_USER": str(2 * SOCKETS_PER_USER)}


@contextlib.contextmanager
def server(name: str, n: int, logdir: Path) -> Iterator[tuple[Running, Path | None]]:
    """A fresh server under test; for ours, signed-in users and a file of their cookies."""
    if name == BASELINE:
        with script_server(name, BASELINE_CMD, logdir) as running:
            yield running, None
        return
    with playhouse(logdir, PLAYHOUSE_ENV, redis=False) as running:
        names = [f"idle{i:05d}" for i in range(users_for(n))]
        accounts = asyncio.run(register_users(running.port, names, parallel=8))
        path = logdir / f"cookies-{running.port}.json"
        path.write_text(json.dumps([a.cookie_header() for a in accounts]))
        yield running, path


def client_command(
    mode: str, running: Running, cookies: Path | None, n: int, cfg: Settings
) -> list[str]:
    """The :mod:`bench.wsclients` command line for one run."""
    cmd = [
        sys.executable, "-m", "bench.wsclients", mode, "--port", str(running.port),
        "--server-pid", str(running.server.pid), "--n", str(n), "--in-flight", str(IN_FLIGHT),
        "--settle", str(cfg.settle), "--spread", str(cfg.spread), "--cpu", str(procs.CLIENT_CPU),
    ]  # fmt: skip
    return cmd + (["--cookies", str(cookies)] if cookies else [])


def measure_once(mode: str, name: str, cfg: Settings, logdir: Path) -> dict[str, Any]:
    """Start ``name`` fresh, run the client process once against it, stop the server."""
    busy = procs.wait_quiet(NOISY, max_wait=cfg.quiet_wait)
    try:
        with server(name, cfg.n, logdir) as (running, cookies):
            cmd = client_command(mode, running, cookies, cfg.n, cfg)
            budget = 60 + cfg.n / 100 + cfg.spread + 2 * cfg.settle
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=budget, check=False)
            lines = done.stdout.decode().strip().splitlines()
            result: dict[str, Any] = json.loads(lines[-1]) if lines else {"error": "no output"}
            if done.returncode != 0 and "error" not in result:
                result["error"] = done.stderr.decode()[-500:]
            if not running.server.is_running():
                result["error"] = f"server exited {result.get('error', '')}"
    except (RuntimeError, ClientError, OSError, subprocess.TimeoutExpired, ValueError) as exc:
        result = {"n": cfg.n, "error": repr(exc)[:2000]}
    result.update(server=name, machine_busy_before=round(busy, 2))
    log(f"{mode} {name} N={cfg.n}: {json.dumps(result)[:600]}")
    return result


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        out.update(flatten(inner, f"{prefix}.{key}" if prefix else key))
    return out


def median_row(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-figure median of the runs without error (all runs kept under ``runs``)."""
    good = [flatten(r) for r in runs if "error" not in r]
    row: dict[str, Any] = {"server": name, "runs": runs, "usable_runs": len(good)}
    if not good:
        row["error"] = runs[-1].get("error") if runs else "no run"
        return row
    for key in good[0]:
        values = [g.get(key) for g in good]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) == len(values):
            row[key] = statistics.median(numbers)
    phase = [g.get("connect.other_cpu", g.get("storm.other_cpu", 0.0)) for g in good]
    row["noisy_runs"] = sum(1 for other in phase if other > NOISY)
    return row


def measure_all(mode: str, cfg: Settings, logdir: Path) -> list[dict[str, Any]]:
    """``cfg.repeats`` runs of each server, interleaved (baseline, ours, baseline, ours...)."""
    runs: dict[str, list[dict[str, Any]]] = {BASELINE: [], PLAYHOUSE: []}
    for _ in range(cfg.repeats):
        for name in runs:
            runs[name].append(measure_once(mode, name, cfg, logdir))
    return [median_row(name, found) for name, found in runs.items()]


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded, or None when either side is missing."""
    return round(a / b, 2) if a and b else None


def report(name: str, quick: bool, cfg: Settings, rows: list[dict[str, Any]]) -> None:
    """Write ``bench/results/<name>[-quick].json``."""
    write_results(
        name,
        quick,
        {
            "scenario": name,
            "quick": quick,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "settings": {
                **cfg.__dict__,
                "sockets_per_user": SOCKETS_PER_USER,
                "in_flight": IN_FLIGHT,
            },
            "server_env": PLAYHOUSE_ENV,
            "rows": rows,
        },
    )


def noise_note(rows: list[dict[str, Any]]) -> str:
    """Which servers had runs measured while other processes used over :data:`NOISY` cores."""
    noisy = [
        f"{r['server']} {r['noisy_runs']}/{r['usable_runs']}" for r in rows if r.get("noisy_runs")
    ]
    if not noisy:
        return ""
    return f" Runs measured while other processes used over {NOISY} cores: {', '.join(noisy)}."


def idle_table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of the idle scenario."""
    base = rows[0]
    out = [
        "| server | N held | RSS KB/conn | vs baseline | connects/s | vs baseline "
        "| handshake p50 ms | p99 ms | p999 ms | failures | server CPU connecting "
        "| server CPU idle | RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['server']} | error: see JSON |" + " |" * 11)
            continue
        out.append(
            f"| {r['server']} | {fmt(r.get('held'), ',.0f')} "
            f"| {fmt(r.get('rss_kb_per_conn'), '.1f')} "
            f"| {fmt(ratio(r.get('rss_kb_per_conn'), base.get('rss_kb_per_conn')), '.2f')} "
            f"| {fmt(r.get('connect.per_s'), ',.0f')} "
            f"| {fmt(ratio(r.get('connect.per_s'), base.get('connect.per_s')), '.2f')} "
            f"| {fmt(r.get('connect.p50_ms'), '.1f')} | {fmt(r.get('connect.p99_ms'), '.1f')} "
            f"| {fmt(r.get('connect.p999_ms'), '.1f')} | {fmt(r.get('connect.failures'), '.0f')} "
            f"| {fmt(r.get('connect.server_cpu'), '.0%')} | {fmt(r.get('idle.server_cpu'), '.0%')} "
            f"| {fmt(r.get('rss_after_mb'), '.0f')} |"
        )
    out += [
        "",
        f"Target: ≤ {TARGET_KB:g} KB RSS per idle authenticated socket. Figures: medians of "
        f"{base.get('usable_runs', 0)} run(s) per server; {SOCKETS_PER_USER} sockets per user, "
        f"{IN_FLIGHT} handshakes in flight.{noise_note(rows)}",
    ]
    return "\n".join(out)


def idle(quick: bool) -> str:
    """Run the idle scenario; write ``bench/results/idle[-quick].json``; return the table."""
    cfg = settings(quick)
    procs.pin_self(procs.CLIENT_CPU)
    procs.raise_nofile_limit()
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        rows = measure_all("idle", cfg, Path(tmp))
    report("idle", quick, cfg, rows)
    return idle_table(rows)
