"""Command line: ``python -m bench [scenario ...] [--quick] [--list]`` (default: every scenario).

Each scenario runs in a child process of its own, so that one that raises, crashes or hangs
(``--timeout``), or leaves CPU pinning behind, does not touch the next: its log lines reach
stderr as they come, its Markdown table stdout when it ends. Then the run writes
``bench/results/summary[-quick].json`` and ``.md`` (:mod:`bench.report`) and one PNG chart per
scenario (:mod:`bench.charts`): into ``docs/bench/`` for a full run, into
``bench/results/charts-quick/`` for ``--quick``. Exit status 1 when any scenario failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench import report
from bench.scenarios import SCENARIOS

STOP_GRACE = 30.0  # seconds a stopped scenario gets to stop its own servers


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line (``--child-outcome`` is internal: one scenario, in this process)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="*",
        choices=[[], *SCENARIOS],
        metavar="scenario",
        help=f"one of: {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 2 minutes)")
    parser.add_argument(
        "--list", action="store_true", help="list the scenarios with their expected durations"
    )
    parser.add_argument("--no-charts", action="store_true", help="write no PNG charts")
    parser.add_argument(
        "--charts-dir",
        type=Path,
        help="where the PNG charts go (default: docs/bench/, or bench/results/charts-quick/ "
        "with --quick)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="stop a scenario after this many seconds (default: 4× its expected duration, at "
        "least 3 minutes quick and 15 full; 0: never)",
    )
    parser.add_argument("--child-outcome", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- the child: one scenario in this process ---------------------------------------------------


def _stop_requested(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # finally blocks stop the servers


def run_child(name: str, quick: bool, outcome: Path) -> int:
    """Run ``name`` here and write its outcome (table, or traceback tail) to ``outcome``."""
    signal.signal(signal.SIGTERM, _stop_requested)
    result: dict[str, Any]
    try:
        result = {"status": "ok", "table": str(SCENARIOS[name](quick))}
    except BaseException as exc:  # reported to the parent, which carries on
        result = {"status": "error", "error": report.error_tail(exc)}
    outcome.write_text(json.dumps(result))
    return 0 if result["status"] == "ok" else 1


# --- the parent: every scenario in a child ----------------------------------------------------


def default_timeout(name: str, quick: bool) -> float:
    """4× the expected duration, at least 180 s (quick) or 900 s (full)."""
    return max(180.0 if quick else 900.0, 4 * report.expected_seconds(name, quick))


def stop_tree(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
    """SIGTERM the child (it stops its servers on the way out), SIGKILL it after ``grace``, then
    kill whatever it started that is still alive (servers run in sessions of their own)."""
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        kids = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for kid in kids:
        with contextlib.suppress(psutil.Error):
            if kid.is_running():
                kid.kill()


def _stderr_fd() -> int | None:
    """The child's stdout goes to our stderr (stdout keeps only the Markdown tables)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, io.UnsupportedOperation):
        return None


def child_command(name: str, quick: bool, outcome: Path) -> list[str]:
    """``python -m bench NAME --child-outcome FILE [--quick]``."""
    cmd = [sys.executable, "-m", "bench", name, "--child-outcome", str(outcome)]
    return [*cmd, "--quick"] if quick else cmd


def run_scenario(name: str, quick: bool, timeout: float) -> report.Outcome:
    """Run ``name`` in a child process and collect its outcome (never raises but on Ctrl-C)."""
    since, started, t0 = time.time(), report.now_iso(), time.monotonic()
    status, table, error = "error", "", None
    with tempfile.TemporaryDirectory(prefix="playhouse-bench-run-") as tmp:
        outcome_file = Path(tmp) / "outcome.json"
        cmd = child_command(name, quick, outcome_file)
        proc = subprocess.Popen(cmd, cwd=report.ROOT, stdout=_stderr_fd())
        try:
            proc.wait(timeout or None)
        except subprocess.TimeoutExpired:
            stop_tree(proc)
            error = f"timed out after {report.duration(timeout)} (--timeout): stopped"
        except KeyboardInterrupt:
            stop_tree(proc)  # the child got the SIGINT too and is stopping its servers
            raise
        try:
            found = json.loads(outcome_file.read_text())
            status, table = found["status"], found.get("table", "")
            if error is None or found.get("error") is None:
                error = error or found.get("error")
            else:  # the traceback of the stop, then why it was stopped (the line shown)
                error = f"{found['error']}\n{error}"
        except (OSError, ValueError, KeyError):
            status = "error"
            error = error or f"the scenario's process exited with status {proc.returncode}"
    if error is not None:
        status = "error"
    return report.Outcome(
        name=name,
        status=status,
        wall_s=round(time.monotonic() - t0, 1),
        expected_s=report.expected_seconds(name, quick),
        started=started,
        table=table,
        error=error,
        json=report.relative(report.results_json(name, quick, since)),
    )


def add_chart(outcome: report.Outcome, charts_dir: Path) -> None:
    """Render the scenario's chart from its JSON (a failure is noted, never raised)."""
    if outcome.json is None:
        return
    from bench import charts  # matplotlib only when charts are drawn

    path, problem = charts.render(report.ROOT / outcome.json, charts_dir)
    outcome.chart, outcome.chart_error = report.relative(path), problem


def run_all(names: list[str], args: argparse.Namespace, argv: list[str]) -> int:
    """Every scenario in turn, progress on stderr, tables on stdout, then the summary."""
    machine, started, t0 = report.machine_info(), report.now_iso(), time.monotonic()
    charts_dir = None
    if not args.no_charts:
        charts_dir = args.charts_dir or (report.QUICK_CHARTS if args.quick else report.DOCS_CHARTS)
    progress = report.Progress(names, args.quick)
    progress.say(
        f"{report.command_line(argv)}: {len(names)} scenarios, expected "
        f"~{report.duration(progress.left(0))}; charts: {report.relative(charts_dir) or 'none'}"
    )
    outcomes: list[report.Outcome] = []
    interrupted = False
    for name in names:
        progress.start(name)
        timeout = args.timeout if args.timeout is not None else default_timeout(name, args.quick)
        try:
            outcome = run_scenario(name, args.quick, timeout)
        except KeyboardInterrupt:
            interrupted = True
            outcome = report.Outcome(
                name, "error", 0.0, report.expected_seconds(name, args.quick), report.now_iso()
            )
            outcome.error = "interrupted (Ctrl-C): the run stopped here"
        if charts_dir is not None:
            add_chart(outcome, charts_dir)
        progress.finish(outcome)
        outcomes.append(outcome)
        if outcome.ok:
            body = outcome.table
        else:
            last = (outcome.error or "").strip().splitlines()[-1:] or ["?"]
            where = report.relative(report.summary_paths(args.quick)[1])
            body = f"**error**: {last[0]} (traceback in {where})"
        print(f"## {name}\n\n{body}\n", flush=True)
        if interrupted:
            break
    json_path, md_path = report.write_summary(
        outcomes,
        quick=args.quick,
        argv=argv,
        machine=machine,
        started=started,
        wall_s=time.monotonic() - t0,
    )
    failed = [o.name for o in outcomes if not o.ok]
    progress.say(
        f"summary: {report.relative(md_path)} and {report.relative(json_path)}; "
        f"{len(outcomes) - len(failed)}/{len(names)} ok"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    if interrupted:
        return 130
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line; list, run one scenario as a child, or run them all."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    names = list(dict.fromkeys(args.scenarios or SCENARIOS))
    if args.list:
        print(report.listing(names))
        return 0
    if args.child_outcome is not None:
        if len(names) != 1:
            raise SystemExit("--child-outcome takes exactly one scenario")
        return run_child(names[0], args.quick, args.child_outcome)
    return run_all(names, args, argv)


if __name__ == "__main__":
    sys.exit(main())
