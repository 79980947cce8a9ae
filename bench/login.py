"""Login storm: bcrypt at cost 12 off the IOLoop, and what the IOLoop feels meanwhile.

200 logins, 50 in flight, against ``server.py`` (LocalBroker, embedded in-memory
MongoDB, rate limits lifted). Reports logins/s next to the machine's bound
(bcrypt threads / single-hash time) and the IOLoop lag the server itself samples
every 5 ms (``playhouse_ioloop_lag_seconds``), as p50/p99 from its histogram.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bcrypt
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from bench import procs

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ROUNDS = 12
PASSWORD = "correct horse battery staple"
_BUCKET = re.compile(r'^playhouse_ioloop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', re.M)


def hash_seconds(rounds: int = ROUNDS, samples: int = 3) -> float:
    """Wall time of one bcrypt hash at ``rounds`` on this machine (best of ``samples``)."""
    best = float("inf")
    for _ in range(samples):
        started = time.perf_counter()
        bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds))
        best = min(best, time.perf_counter() - started)
    return best


def lag_buckets(metrics: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) pairs of the lag histogram."""
    return [(float(le), float(count)) for le, count in _BUCKET.findall(metrics)]


def quantile(
    before: list[tuple[float, float]], after: list[tuple[float, float]], q: float
) -> float:
    """Prometheus-style ``histogram_quantile`` over the samples taken between two scrapes."""
    counts = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    total = counts[-1][1]
    if total <= 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for upper, cumulative in counts:
        if cumulative >= rank:
            if upper == float("inf"):
                return lower
            share = (rank - below) / max(cumulative - below, 1e-9)
            return lower + (upper - lower) * share
        lower, below = upper, cumulative
    return lower


async def storm(port: int, *, logins: int, in_flight: int) -> dict[str, Any]:
    base = f"http://{procs.HOST}:{port}"
    client = AsyncHTTPClient(force_instance=True, max_clients=in_flight)
    token_reply = await client.fetch(f"{base}/api/xsrf")
    token = json.loads(token_reply.body)["xsrf"]
    headers = {"X-XSRFToken": token, "Cookie": f"_xsrf={token}"}

    def post(path: str, body: dict[str, str]) -> HTTPRequest:
        return HTTPRequest(
            f"{base}{path}",
            method="POST",
            body=json.dumps(body),
            headers=headers,
            request_timeout=600,
        )

    await client.fetch(post("/api/register", {"username": "bencher", "password": PASSWORD}))
    before = lag_buckets((await client.fetch(f"{base}/metrics")).body.decode())
    gate = asyncio.Semaphore(in_flight)
    latencies: list[float] = []

    async def one() -> None:
        async with gate:
            started = time.perf_counter()
            reply = await client.fetch(
                post("/api/login", {"username": "bencher", "password": PASSWORD}),
                raise_error=False,
            )
            if reply.code != 200:
                raise RuntimeError(f"login answered {reply.code}: {reply.body[:200]!r}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(logins)))
    elapsed = time.perf_counter() - started
    after = lag_buckets((await client.fetch(f"{base}/metrics")).body.decode())
    client.close()
    latencies.sort()
    return {
        "logins": logins,
        "in_flight": in_flight,
        "seconds": round(elapsed, 2),
        "logins_per_s": round(logins / elapsed, 2),
        "login_p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "login_p99_ms": round(1000 * latencies[int(len(latencies) * 0.99) - 1], 1),
        "lag_samples": int(after[-1][1] - before[-1][1]),
        "lag_p50_ms": round(1000 * quantile(before, after, 0.50), 2),
        "lag_p99_ms": round(1000 * quantile(before, after, 0.99), 2),
    }


def login(quick: bool, *, threads: int = 0) -> str:
    """Run the storm once against a fresh server; returns a Markdown table."""
    logins = 12 if quick else 200
    port = procs.free_port()
    env = {
        "PLAYHOUSE_MONGODB_DATA_DIR": "memory",
        "PLAYHOUSE_SECURITY_BCRYPT_ROUNDS": str(ROUNDS),
        "PLAYHOUSE_SECURITY_LOGIN_ATTEMPTS_PER_USER": "1000000",
        "PLAYHOUSE_SECURITY_LOGIN_ATTEMPTS_PER_IP": "1000000",
        "PLAYHOUSE_SERVER_LAG_PROBE_INTERVAL": "0.005",
        "PLAYHOUSE_SECURITY_BCRYPT_THREADS": str(threads),
    }
    single = hash_seconds()
    workers = threads or (os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="bench-login-") as tmp:
        log = Path(tmp) / "server.log"
        cmd = [sys.executable, "server.py", "--port", str(port)]
        server = procs.start_unpinned(cmd, log, env=env, cwd=ROOT)
        try:
            procs.wait_http_ok(server, port, "/healthz", timeout=30)
            result = asyncio.run(storm(port, logins=logins, in_flight=50))
        except Exception as exc:
            raise RuntimeError(f"login scenario failed: {exc}\n{procs.tail(log)}") from exc
        finally:
            procs.stop(server)
    result.update(
        hash_ms=round(1000 * single, 1),
        bcrypt_threads=workers,
        bound_logins_per_s=round(workers / single, 2),
        date=time.strftime("%Y-%m-%d %H:%M:%S %z"),
        quick=quick,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "login-quick.json" if quick else "login.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    return (
        "| logins | in flight | logins/s | bound (threads ÷ hash time) | hash ms | "
        "login p50 ms | login p99 ms | IOLoop lag p50 ms | IOLoop lag p99 ms | lag samples |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {result['logins']} | {result['in_flight']} | {result['logins_per_s']} | "
        f"{result['bound_logins_per_s']} ({workers} ÷ {result['hash_ms']} ms) | "
        f"{result['hash_ms']} | {result['login_p50_ms']} | {result['login_p99_ms']} | "
        f"{result['lag_p50_ms']} | {result['lag_p99_ms']} | {result['lag_samples']} |"
    )
