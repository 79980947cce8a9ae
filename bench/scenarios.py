"""Benchmark scenarios. ``fanout``: bare Tornado vs Playhouse (LocalBroker, RedisBroker)."""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.abuse import abuse
from bench.challenge import challenge
from bench.cluster import cluster_scenario
from bench.idle import idle
from bench.login import login
from bench.records import records
from bench.relay import relay
from bench.storm import storm

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BASELINE = "tornado-baseline"
LOCAL = "playhouse-local"
REDIS = "playhouse-redis"
OUTSTANDING_DELIVERIES = 32_000  # publisher window = max(4, this // N) messages
NOISY_OTHER_CPU = 0.3  # a run where other processes used more CPU than this is retried
POLL_PAUSE = 0.001  # load generator sleep after each epoll round (see loadgen.Receiver.run)


@dataclass
class ServerSpec:
    """How to start one server under test on a given port."""

    name: str
    command: Callable[[int], list[str]]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Settings:
    """Knobs that differ between a full and a ``--quick`` run."""

    sizes: tuple[int, ...]
    warmup: float
    duration: float
    repeats: int
    quiet_wait: float  # longest wait (s) for a quiet machine before each run starts anyway
    retries: int = 2  # extra runs allowed per server and size for errored or noisy ones


def settings(quick: bool) -> Settings:
    """Full run: N in (1000, 5000, 10000), 2 s warm-up + 5 s window, one usable run per server
    and size (an errored or noisy run is retried, at most twice), after up to 30 s waiting for a
    quiet machine; quick: N=200, 0.2 s + 0.5 s, once, no retry, no wait."""
    if quick:
        return Settings(
            sizes=(200,), warmup=0.2, duration=0.5, repeats=1, quiet_wait=0.0, retries=0
        )
    return Settings(
        sizes=(1000, 5000, 10_000), warmup=2.0, duration=5.0, repeats=1, quiet_wait=30.0, retries=2
    )


def log(message: str) -> None:
    """Progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def playhouse_spec(name: str, redis_url: str) -> ServerSpec:
    """Our server, configured as ARCHITECTURE §6 benchmarks it."""
    env = {
        "PLAYHOUSE_CHANNELS_PUBLISHABLE": "bench",
        "PLAYHOUSE_WS4REDIS_HEARTBEAT": "",
        "PLAYHOUSE_WS4REDIS_EXPIRE": "0",
        "PLAYHOUSE_LIMITS_PING_INTERVAL": "0",
        "PLAYHOUSE_REDIS_URL": redis_url,
        "PLAYHOUSE_MONGODB_DATA_DIR": "memory",  # embedded nx-27017 keeps nothing on disk
        # The publisher is one client socket sending as fast as its window allows: the
        # per-socket rate limit (20/s by default) is not what this scenario measures.
        "PLAYHOUSE_LIMITS_MESSAGES_PER_SECOND": "1000000",
        "PLAYHOUSE_LIMITS_MESSAGE_BURST": "1000000",
    }
    return ServerSpec(name, lambda port: [sys.executable, "server.py", "--port", str(port)], env)


BASELINE_SPEC = ServerSpec(
    BASELINE,
    lambda port: [sys.executable, str(ROOT / "bench" / "baseline_tornado.py"), "--port", str(port)],
)


def measure_once(spec: ServerSpec, n: int, cfg: Settings, logdir: Path) -> dict[str, Any]:
    """Start a fresh server, run the load generator against it once, stop the server."""
    port = procs.free_port()
    logfile = logdir / f"{spec.name}-{n}-{port}.log"
    server = procs.start(spec.command(port), logfile, procs.SERVER_CPU, spec.env, ROOT)
    try:
        procs.wait_http_ok(server, port, "/healthz", timeout=20)
        window = max(4, OUTSTANDING_DELIVERIES // n)
        cmd = [
            sys.executable, "-m", "bench.loadgen", "--port", str(port),
            "--server-pid", str(server.pid), "--n", str(n), "--window", str(window),
            "--warmup", str(cfg.warmup), "--duration", str(cfg.duration),
            "--pause", str(POLL_PAUSE), "--cpu", str(procs.CLIENT_CPU),
        ]  # fmt: skip
        budget = 60 + n / 50 + cfg.warmup + cfg.duration
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=budget, check=False)
        lines = done.stdout.decode().strip().splitlines()
        result: dict[str, Any] = json.loads(lines[-1]) if lines else {"error": "no output"}
        if done.returncode != 0 and "error" not in result:
            result["error"] = done.stderr.decode()[-500:]
    except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        result = {"n": n, "error": f"{exc!r}\n{procs.tail(logfile)}"}
    finally:
        died = server.poll()
        procs.stop(server)
    if died is not None:
        result["error"] = f"server exited during the run (status {died}) {result.get('error', '')}"
    if server.returncode not in (0, -15):
        result.setdefault("warning", f"server exit status {server.returncode}")
    return result


def usable(run: dict[str, Any]) -> bool:
    """A run without error, measured while other processes left the machine quiet."""
    return "error" not in run and run.get("other_cpu", 0.0) <= NOISY_OTHER_CPU


def summarize(name: str, n: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median run (by deliveries/s) of the usable runs, with the spread; all runs are kept."""
    good = [r for r in runs if usable(r)] or [r for r in runs if "error" not in r]
    good.sort(key=lambda r: r["deliveries_per_s"])
    if not good:
        return {"server": name, "n": n, "error": runs[-1].get("error"), "runs": runs}
    median = good[(len(good) - 1) // 2]
    spread = [r["deliveries_per_s"] for r in good]
    return {
        "server": name,
        **median,
        "deliveries_per_s_runs": spread,
        "deliveries_per_s_mean": round(statistics.fmean(spread)),
        "runs": runs,
    }


def measure_all(
    specs: list[ServerSpec], n: int, cfg: Settings, logdir: Path
) -> list[dict[str, Any]]:
    """Measure every server at ``n`` connections, interleaved (A, B, C, A, B, C, ...) so that
    slow drifts of the machine hit all of them alike; each starts only on a quiet machine.

    A server gets ``cfg.repeats`` usable runs; errored or noisy ones are retried, at most
    ``cfg.repeats + cfg.retries`` runs in all.
    """
    runs: dict[str, list[dict[str, Any]]] = {spec.name: [] for spec in specs}
    for attempt in range(cfg.repeats + cfg.retries):
        for spec in specs:
            if sum(map(usable, runs[spec.name])) >= cfg.repeats:
                continue
            busy = procs.wait_quiet(NOISY_OTHER_CPU, max_wait=cfg.quiet_wait)
            run = measure_once(spec, n, cfg, logdir)
            run["machine_busy_before"] = round(busy, 2)
            log(f"{spec.name} N={n} run {attempt + 1}: {run}")
            runs[spec.name].append(run)
    return [summarize(spec.name, n, runs[spec.name]) for spec in specs]


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded, or None when either side is missing."""
    return round(a / b, 2) if a and b else None


def add_ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Fill ``vs_baseline`` in each row; return RedisBroker/LocalBroker ratios per N."""
    rate = {(r["server"], r["n"]): r.get("deliveries_per_s") for r in rows}
    for row in rows:
        row["vs_baseline"] = ratio(row.get("deliveries_per_s"), rate.get((BASELINE, row["n"])))
    sizes = sorted({r["n"] for r in rows})
    return {str(n): ratio(rate.get((REDIS, n)), rate.get((LOCAL, n))) for n in sizes}


def fmt(value: Any, spec: str = "") -> str:
    """Table cell: formatted number, or an em dash when missing."""
    return "—" if value is None else format(value, spec)


def table(rows: list[dict[str, Any]], redis_vs_local: dict[str, Any]) -> str:
    """The Markdown results table."""
    out = [
        "| server | N | deliveries/s | min-max of runs | vs baseline | p50 ms | p99 ms "
        "| p999 ms | RSS KB/idle conn | window | server CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['server']} | {r['n']:,} | error: see JSON | | | | | | | | |")
            continue
        spread = r["deliveries_per_s_runs"]
        out.append(
            f"| {r['server']} | {r['n']:,} | {fmt(r['deliveries_per_s'], ',')} "
            f"| {min(spread):,}-{max(spread):,} | {fmt(r['vs_baseline'], '.2f')} "
            f"| {fmt(r['p50_ms'], '.1f')} "
            f"| {fmt(r['p99_ms'], '.1f')} | {fmt(r.get('p999_ms'), '.1f')} "
            f"| {fmt(r['rss_kb_per_conn'], '.1f')} "
            f"| {r['window']} | {fmt(r['server_cpu'], '.0%')} |"
        )
    pairs = [f"N={int(n):,}: {fmt(v, '.2f')}" for n, v in redis_vs_local.items()]
    out += ["", "RedisBroker / LocalBroker deliveries/s: " + ", ".join(pairs)]
    return "\n".join(out)


def fanout(quick: bool) -> str:
    """Run the fan-out comparison; write ``bench/results/fanout[-quick].json``; return the table."""
    cfg = settings(quick)
    procs.pin_self(procs.CLIENT_CPU)
    procs.raise_nofile_limit()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="playhouse-bench-") as tmp:
        logdir = Path(tmp)
        specs = [BASELINE_SPEC]
        with contextlib.ExitStack() as stack:
            if (ROOT / "server.py").exists():
                url = stack.enter_context(procs.redis_server(logdir)).url
                specs += [playhouse_spec(LOCAL, ""), playhouse_spec(REDIS, url)]
            else:
                log("server.py not found: measuring the baseline only")
            for n in cfg.sizes:
                rows += measure_all(specs, n, cfg, logdir)
    rows.sort(key=lambda r: (r["n"], [BASELINE, LOCAL, REDIS].index(r["server"])))
    redis_vs_local = add_ratios(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "scenario": "fanout",
        "quick": quick,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "settings": cfg.__dict__,
        "redis_vs_local": redis_vs_local,
        "rows": rows,
    }
    name = "fanout-quick.json" if quick else "fanout.json"  # a smoke run keeps the full results
    (RESULTS / name).write_text(json.dumps(report, indent=2) + "\n")
    return table(rows, redis_vs_local)


def peers(quick: bool) -> str:
    """python-socketio and Django Channels beside us (``bench/peers.py``, imported here
    when run: it builds on this module)."""
    from bench.peers import peers as run_peers

    return run_peers(quick)


SCENARIOS: dict[str, Callable[[bool], str]] = {
    "fanout": fanout,
    "login": login,
    "challenge": challenge,
    "relay": relay,
    "records": records,
    "cluster": cluster_scenario,
    "abuse": abuse,
    "idle": idle,
    "storm": storm,
    "peers": peers,
}
