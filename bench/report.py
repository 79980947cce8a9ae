"""Run report of ``python -m bench``: machine, progress lines, and the combined summary.

Besides each scenario's own ``bench/results/<name>[-quick].json``, a run writes
``bench/results/summary[-quick].json`` (machine, command, per scenario: status, wall time, the
path of its JSON and chart, a traceback tail when it failed) and ``summary[-quick].md`` (a
header naming the exact command, the machine and the date, then every scenario's table).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS_CHARTS = ROOT / "docs" / "bench"
QUICK_CHARTS = RESULTS / "charts-quick"

EXPECTED: dict[str, tuple[float, float | None]] = {
    # name: (--quick: measured on the 2-core machine while quiet (2026-11-28, 22:07 UTC, 77 s
    # in all; quick runs never retry and never wait for a quiet machine); full: measured with
    # the full settings where the scenario takes 2 minutes or less, otherwise estimated per run
    # as connect + warm-up + window + teardown per server per size or step, calibrated on
    # single full-mode runs (2026-11-28, 22:08-22:18 UTC).
    # "quiet" = procs.wait_quiet's one 1 s reading of a quiet machine before each run.)
    # full: 3 servers x 1 run per size (+ 1 s quiet each); per run connect + ~10 s (start,
    # settle 1, warm-up 2, window 5, drain, stop): 1k 3 x (1 + 0.5 + 10) = 35, 5k 3 x (1 + 3
    # + 10) = 42, 10k measured 13.4 + 15.0 + 16.9 + 3 = 48; + 2 s child and Redis = ~127 s
    "fanout": (9.0, 130.0),
    # full: one hash + 1 registration + 200 logins x 0.236 s / 2 threads = 24 s + start ~3 s
    "login": (4.0, 30.0),
    # full: measured 68 s (register 200 users 0.4 s, 200 sockets, 200/5 + 200/10 = 60 s of
    # accepts, start/stop)
    "challenge": (4.0, 70.0),
    # full: start + 1,000 users + 500 games 11 s; ours 4 steps (0.1-1.0, saturated at 1.0) x
    # (1 warm-up + 1 quiet + 6) = 32; drain, store checks, stop 10; bare relay measured 58 s
    # (7 steps x 8 + 2, saturated at 8 moves/s); + 3 = ~114 s (118 s measured with the
    # earlier ladder, 5 + 7 steps)
    "relay": (10.0, 115.0),
    # full: measured 71 s (seeding 100,000 games 16 s, server up 1.4 s, warm-up through the
    # cursors 25 s, 30 timed requests x 5 endpoints + the database queries ~25 s, stop)
    "records": (4.0, 75.0),
    # full: measured 40 s (3 setups x ~10 s: instances + nginx up, 1,000 subscribers, warm-up
    # 2, window 5, stop; routing 2 s; relay 504 moves x 2 kinds x 2 pinnings 7 s)
    "cluster": (10.0, 45.0),
    # full: per part ~12 s of start, Redis, 2,000 subscribers, teardown (from the 276 s run with
    # 12 s windows) x 4 = 48; baseline slow 2 + 5 + 20 (cap) + 5 = 32; ours slow 2 + 5 + ~40
    # (slow clients given up on ~34 s after they stop reading, + 2-8 s close wait) + 5 = 52;
    # ours flood 2 + 4 x 5 + 2 (flooders) = 24; baseline flood 2 + 3 x 5 + 1 = 18 -> ~175 s
    "abuse": (13.0, 175.0),
    # full: measured 32 s (one run per server at 10,000 sockets: baseline 8 s, ours 23 s)
    "idle": (5.0, 35.0),
    # full: measured 34 s (one run per server, 5,000 sockets reconnecting over 10 s)
    "storm": (6.0, 35.0),
    # quick: without the one-off build of the two peer virtualenvs (~40 s on the first run).
    # full: broadcast at 5,000, 4 servers, measured 12.5 + 11.1 + 16.5 + 20.0 + 4 quiet = 64;
    # relay (500 games, 0.1/0.3/1/3 moves/s per player, 1 + 1 + 5 s per step): ours 11 setup
    # + 3 steps x 7 + 9 teardown = 41, bare relay 2 + 4 x 7 + 3 = 33, socketio measured 32
    # (4 steps), channels measured 25 (3 steps); + 3 = ~198 s
    "peers": (11.0, 200.0),
}
"""Expected wall time per scenario (seconds): drives the estimates and ``--list``."""
DEFAULT_EXPECTED = (30.0, 300.0)  # a scenario missing above (quick, full)
TRACEBACK_CHARS = 4000  # tail of a failed scenario's traceback kept in the summary


def expected_seconds(name: str, quick: bool) -> float:
    """Expected wall time of ``name`` (the default when unknown)."""
    quick_s, full_s = EXPECTED.get(name, DEFAULT_EXPECTED)
    if quick:
        return quick_s
    return full_s if full_s is not None else DEFAULT_EXPECTED[1]


def known(name: str, quick: bool) -> bool:
    """Whether ``name`` has an expected duration of its own (not the default)."""
    entry = EXPECTED.get(name)
    return entry is not None and (quick or entry[1] is not None)


def duration(seconds: float) -> str:
    """``42 s``, ``3:07`` or ``1:02:03``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def listing(names: Sequence[str]) -> str:
    """The ``--list`` text: each scenario with its expected quick and full durations."""
    width = max([len("scenario"), *map(len, names)])
    lines = [f"{'scenario':<{width}}  {'--quick':>9}  {'full':>9}"]
    total_quick = total_full = 0.0
    for name in names:
        quick_s, full_s = expected_seconds(name, True), expected_seconds(name, False)
        total_quick += quick_s
        total_full += full_s
        q = ("~" if known(name, True) else "?") + duration(quick_s)
        f = ("~" if known(name, False) else "?") + duration(full_s)
        lines.append(f"{name:<{width}}  {q:>9}  {f:>9}")
    lines.append(f"{'total':<{width}}  {'~' + duration(total_quick):>9}  ")
    lines[-1] += f"{'~' + duration(total_full):>9}"
    lines.append("(s or m:ss; ? = no figure yet, a default is used for the estimates)")
    if "peers" in names:
        lines.append(
            "(peers: its first run ever also builds two virtualenvs, ~40 s once, not counted)"
        )
    return "\n".join(lines)


# --- machine and command ----------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _ram_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info() -> dict[str, Any]:
    """Commit, branch and whether tracked files differ from it."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": _git("rev-parse", "HEAD"),
        "branch": _git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(status) if status is not None else None,
    }


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, kernel, Python, git commit and the date."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    ram = _ram_bytes()
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "ram_gib": round(ram / 2**30, 1) if ram else None,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "hostname": platform.node(),
        "git": git_info(),
        "date": now_iso(),
    }


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def relative(path: Path | None) -> str | None:
    """``path`` relative to the repository when inside it."""
    if path is None:
        return None
    absolute = Path(os.path.abspath(path))
    return str(absolute.relative_to(ROOT)) if absolute.is_relative_to(ROOT) else str(path)


def command_line(argv: Sequence[str]) -> str:
    """The exact command of this run (interpreter relative to the repository when inside)."""
    return shlex.join([relative(Path(sys.executable)) or "python", "-m", "bench", *argv])


# --- outcomes and progress --------------------------------------------------------------------


@dataclass
class Outcome:
    """What one scenario of a run came to."""

    name: str
    status: str  # "ok" or "error"
    wall_s: float
    expected_s: float
    started: str
    table: str = ""
    error: str | None = None  # traceback tail
    json: str | None = None  # its results file, relative to the repository
    chart: str | None = None
    chart_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def record(self) -> dict[str, Any]:
        """The summary JSON entry (the table is in the Markdown summary)."""
        out = {k: v for k, v in asdict(self).items() if k != "table"}
        return {k: v for k, v in out.items() if v is not None or k in ("json", "chart")}


def error_tail(exc: BaseException) -> str:
    """The last :data:`TRACEBACK_CHARS` characters of ``exc``'s formatted traceback."""
    text = "".join(traceback.format_exception(exc)).rstrip()
    return text[-TRACEBACK_CHARS:]


def results_json(name: str, quick: bool, since: float) -> Path | None:
    """``bench/results/<name>[-quick].json`` when this run wrote it (modified after ``since``)."""
    path = RESULTS / (f"{name}-quick.json" if quick else f"{name}.json")
    try:
        return path if path.stat().st_mtime >= since - 1.0 else None
    except OSError:
        return None


class Progress:
    """Progress lines on stderr: each scenario's start and end, k/n, elapsed, time left."""

    def __init__(self, names: Sequence[str], quick: bool, stream: TextIO | None = None) -> None:
        self.names = list(names)
        self.quick = quick
        self.stream = stream
        self.started = time.monotonic()
        self.done = 0

    def left(self, from_index: int) -> float:
        """Expected seconds of the scenarios from ``from_index`` on."""
        return sum(expected_seconds(n, self.quick) for n in self.names[from_index:])

    def say(self, message: str) -> None:
        stream = self.stream or sys.stderr
        print(f"[run {time.strftime('%H:%M:%S')}] {message}", file=stream, flush=True)

    def status(self, left: float) -> str:
        elapsed = time.monotonic() - self.started
        return (
            f"{self.done}/{len(self.names)} scenarios, elapsed {duration(elapsed)}, "
            f"estimated remaining ~{duration(left)}"
        )

    def start(self, name: str) -> None:
        """Announce the scenario about to run."""
        index = self.done
        self.say(
            f"[{index + 1}/{len(self.names)}] {name}: start "
            f"(expected ~{duration(expected_seconds(name, self.quick))}) | "
            + self.status(self.left(index))
        )

    def finish(self, outcome: Outcome) -> None:
        """Announce a scenario's end and what is left."""
        self.done += 1
        result = "ok" if outcome.ok else "ERROR"
        detail = ""
        if outcome.error:
            detail = f" ({outcome.error.strip().splitlines()[-1][:200]})"
        self.say(
            f"[{self.done}/{len(self.names)}] {outcome.name}: {result} in "
            f"{duration(outcome.wall_s)} (expected ~{duration(outcome.expected_s)}){detail} | "
            + self.status(self.left(self.done))
        )


# --- summary ----------------------------------------------------------------------------------


def summary_paths(quick: bool, results: Path | None = None) -> tuple[Path, Path]:
    """``summary[-quick].json`` and ``.md`` under ``results`` (default ``bench/results``)."""
    stem, where = ("summary-quick" if quick else "summary"), results or RESULTS
    return where / f"{stem}.json", where / f"{stem}.md"


def machine_line(machine: dict[str, Any]) -> str:
    """One line: CPU, cores, RAM, kernel, Python."""
    cores = f"{machine.get('cores')} cores"
    if machine.get("cores_usable") not in (None, machine.get("cores")):
        cores += f" ({machine['cores_usable']} usable)"
    return (
        f"{machine.get('cpu_model')}, {cores}, {machine.get('ram_gib')} GiB RAM, "
        f"{machine.get('kernel')}, {machine.get('python')}"
    )


def markdown(summary: dict[str, Any], outcomes: Sequence[Outcome]) -> str:
    """The Markdown summary: header (command, machine, date), status table, every table."""
    machine, git = summary["machine"], summary["machine"].get("git", {})
    commit = (git.get("commit") or "unknown")[:12]
    if git.get("dirty"):
        commit += " (with uncommitted changes)"
    kind = "quick smoke run" if summary["quick"] else "full run"
    out = [
        f"# Playhouse benchmarks: {kind}",
        "",
        f"- Command: `{summary['command']}`",
        f"- Date: {summary['started']} to {summary['finished']} "
        f"(wall {duration(summary['wall_s'])})",
        f"- Machine: {machine_line(machine)}",
        f"- Commit: {commit} on {git.get('branch') or 'unknown branch'}",
        f"- Result: {summary['passed']}/{len(outcomes)} scenarios ok"
        + (f"; failed: {', '.join(summary['failed'])}" if summary["failed"] else ""),
        "",
        "| scenario | status | wall | expected | results | chart |",
        "|---|---|---:|---:|---|---|",
    ]
    for o in outcomes:
        out.append(
            f"| {o.name} | {o.status} | {duration(o.wall_s)} | {duration(o.expected_s)} "
            f"| {f'`{o.json}`' if o.json else '—'} | {f'`{o.chart}`' if o.chart else '—'} |"
        )
    for o in outcomes:
        out += ["", f"## {o.name}", ""]
        if o.ok:
            out.append(o.table.strip() or "(no table)")
        else:
            out += ["Failed:", "", "```", (o.error or "").strip(), "```"]
    return "\n".join(out) + "\n"


def write_summary(
    outcomes: Sequence[Outcome],
    *,
    quick: bool,
    argv: Sequence[str],
    machine: dict[str, Any],
    started: str,
    wall_s: float,
    results: Path | None = None,
) -> tuple[Path, Path]:
    """Write ``summary[-quick].json`` and ``.md``; return their paths."""
    failed = [o.name for o in outcomes if not o.ok]
    summary = {
        "command": command_line(argv),
        "argv": list(argv),
        "quick": quick,
        "started": started,
        "finished": now_iso(),
        "wall_s": round(wall_s, 1),
        "machine": machine,
        "passed": len(outcomes) - len(failed),
        "failed": failed,
        "scenarios": [o.record() for o in outcomes],
    }
    json_path, md_path = summary_paths(quick, results)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    md_path.write_text(markdown(summary, outcomes))
    return json_path, md_path
