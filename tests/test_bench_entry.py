"""``python -m bench`` stays runnable: the entry point, its run report and its charts.

No benchmark runs here: scenarios are replaced by stand-ins, charts are drawn from small
fixture JSON, and the child processes are one-line Python scripts.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import __main__ as cli
from bench import charts, report
from bench.scenarios import SCENARIOS
from tests.support import ROOT

PNG = b"\x89PNG\r\n\x1a\n"

FANOUT = {
    "scenario": "fanout",
    "quick": True,
    "date": "2026-01-01 00:00:00 +0000",
    "rows": [
        {"server": "tornado-baseline", "n": 200, "deliveries_per_s": 30000, "p99_ms": 12.5},
        {"server": "playhouse-local", "n": 200, "deliveries_per_s": 150000, "p99_ms": 3.1},
        {"server": "playhouse-redis", "n": 200, "error": "server exited"},
    ],
}
RELAY = {
    "scenario": "relay",
    "results": {
        "playhouse-redis": {"rows": [{"offered_per_s": 40, "rtt_p99_ms": 9.0}]},
        "tornado-relay": {"rows": [{"offered_per_s": 40, "rtt_p99_ms": None}]},
    },
}
LOGIN = {"logins": 12, "lag_p50_ms": 0.7, "lag_p99_ms": 40.0, "logins_per_s": 8.1}
NEW_SCENARIO = {  # a scenario charts.py has never heard of: nested per-row figures
    "scenario": "storm",
    "rows": [
        {"server": "tornado-baseline", "n": 1000, "storm": {"per_s": 497.2, "p99_ms": 52.1}},
        {"server": "playhouse-local", "n": 1000, "storm": {"per_s": 496.2, "p99_ms": 155.0}},
    ],
}


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_list_names_every_scenario_with_durations() -> None:
    done = run_bench("--list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for name in SCENARIOS:
        assert any(line.split()[:1] == [name] for line in lines), done.stdout
    assert any(line.startswith("total") for line in lines)


def test_unknown_scenario_is_refused() -> None:
    done = run_bench("no-such-scenario", "--list")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


@pytest.mark.parametrize("data", [FANOUT, RELAY, NEW_SCENARIO], ids=["fanout", "relay", "new"])
def test_charts_are_drawn(tmp_path: Path, data: dict[str, Any]) -> None:
    png, problem = charts.render(write(tmp_path / "x-quick.json", data), tmp_path / "out")
    assert png == tmp_path / "out" / f"{data['scenario']}.png"
    assert png.read_bytes().startswith(PNG)
    assert problem is None


def test_chart_name_comes_from_the_file_when_the_json_has_none(tmp_path: Path) -> None:
    png, _ = charts.render(write(tmp_path / "login-quick.json", LOGIN), tmp_path)
    assert png == tmp_path / "login.png"


def test_malformed_results_never_raise(tmp_path: Path) -> None:
    broken = {"scenario": "fanout", "rows": [{"server": "x", "n": 1}]}  # no figure at all
    png, problem = charts.render(write(tmp_path / "fanout.json", broken), tmp_path)
    assert png is None and problem and "no chart" in problem
    # A known scenario with an unexpected shape falls back to the generic chart.
    odd = {"scenario": "relay", "rows": [{"server": "a", "moves_per_s": 10.0}]}
    png, problem = charts.render(write(tmp_path / "relay.json", odd), tmp_path)
    assert png is not None and problem and "KeyError" in problem
    (tmp_path / "bad.json").write_text("{not json")
    assert charts.render(tmp_path / "bad.json", tmp_path)[0] is None


def test_a_failing_scenario_is_reported_and_the_next_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(quick: bool) -> str:
        raise RuntimeError("the server did not start")

    monkeypatch.setitem(SCENARIOS, "boom", boom)
    outcome = tmp_path / "outcome.json"
    assert cli.run_child("boom", True, outcome) == 1
    found = json.loads(outcome.read_text())
    assert found["status"] == "error"
    assert "RuntimeError: the server did not start" in found["error"]


def fake_outcome(name: str, quick: bool, timeout: float) -> report.Outcome:
    ok = name != "b"
    return report.Outcome(
        name=name,
        status="ok" if ok else "error",
        wall_s=1.0,
        expected_s=2.0,
        started=report.now_iso(),
        table=f"| {name} |\n|---|" if ok else "",
        error=None if ok else "Traceback (most recent call last):\nValueError: b broke",
    )


def test_run_all_writes_the_summary_and_fails_when_one_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    monkeypatch.setattr(cli, "run_scenario", fake_outcome)
    args = argparse.Namespace(quick=True, no_charts=True, charts_dir=None, timeout=None)
    assert cli.run_all(["a", "b", "c"], args, ["a", "b", "c", "--quick"]) == 1
    out = capsys.readouterr()
    assert "## a" in out.out and "## c" in out.out  # the run went on after b
    assert "[3/3] c: ok" in out.err and "3/3 scenarios" in out.err
    summary = json.loads((tmp_path / "summary-quick.json").read_text())
    assert summary["failed"] == ["b"] and summary["passed"] == 2
    assert summary["command"].endswith("-m bench a b c --quick")
    assert [s["status"] for s in summary["scenarios"]] == ["ok", "error", "ok"]
    assert "ValueError: b broke" in summary["scenarios"][1]["error"]
    for key in ("cpu_model", "cores", "ram_gib", "kernel", "python", "git", "date"):
        assert key in summary["machine"]
    markdown = (tmp_path / "summary-quick.md").read_text()
    assert "-m bench a b c --quick`" in markdown
    assert "| a |\n|---|" in markdown and "ValueError: b broke" in markdown


def script(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """Make the scenario child a one-line script (``OUT`` is the outcome file's path)."""

    def command(name: str, quick: bool, outcome: Path) -> list[str]:
        return [sys.executable, "-c", f"OUT = {str(outcome)!r}\n{code}"]

    monkeypatch.setattr(cli, "child_command", command)


def test_child_outcome_is_collected(monkeypatch: pytest.MonkeyPatch) -> None:
    script(
        monkeypatch,
        "import json, pathlib\n"
        "pathlib.Path(OUT).write_text(json.dumps({'status': 'ok', 'table': '| t |'}))",
    )
    outcome = cli.run_scenario("fanout", True, 60)
    assert outcome.ok and outcome.table == "| t |"


def test_child_that_dies_or_hangs_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    script(monkeypatch, "raise SystemExit(3)")
    outcome = cli.run_scenario("fanout", True, 60)
    assert not outcome.ok and "status 3" in (outcome.error or "")
    script(monkeypatch, "import time\ntime.sleep(60)")
    outcome = cli.run_scenario("fanout", True, 0.5)
    assert not outcome.ok and "timed out" in (outcome.error or "")
    assert outcome.wall_s < 30


def test_progress_lines_count_and_estimate() -> None:
    stream = io.StringIO()
    progress = report.Progress(["fanout", "login"], quick=True, stream=stream)
    progress.start("fanout")
    progress.finish(report.Outcome("fanout", "ok", 3.0, 16.0, report.now_iso()))
    lines = stream.getvalue().splitlines()
    left = report.duration(report.expected_seconds("login", True))
    assert "[1/2] fanout: start" in lines[0] and "0/2 scenarios" in lines[0]
    assert "[1/2] fanout: ok in 3 s" in lines[1] and f"remaining ~{left}" in lines[1]


def test_durations_and_error_tail() -> None:
    assert [report.duration(s) for s in (4.4, 75, 3723)] == ["4 s", "1:15", "1:02:03"]
    try:
        raise ValueError("x" * 10_000)
    except ValueError as exc:
        tail = report.error_tail(exc)
    assert len(tail) == report.TRACEBACK_CHARS and tail.endswith("x")


def test_expected_durations_fit_the_time_budgets() -> None:
    """The issue's budgets, with margin: quick ≤ 100 s (under 2 minutes), full ≤ 17 minutes
    (under 20), every scenario with figures of its own."""
    assert all(report.known(name, True) and report.known(name, False) for name in SCENARIOS)
    assert sum(report.expected_seconds(name, True) for name in SCENARIOS) <= 100
    assert sum(report.expected_seconds(name, False) for name in SCENARIOS) <= 17 * 60


def test_quick_settings_never_retry_nor_wait() -> None:
    """A quick run proves each scenario runs: no noise retry, no wait for a quiet machine."""
    from bench import abuse, challenge, cluster, idle, peers, procs, relay, scenarios, storm

    fan = scenarios.settings(True)
    assert (fan.repeats, fan.retries, fan.quiet_wait) == (1, 0, 0)
    for game in (challenge.settings(True), relay.settings(True)):
        assert (game.attempts, game.quiet_wait) == (1, 0)
    mesh = cluster.settings(True)
    assert (mesh.repeats, mesh.retries, mesh.quiet_wait) == (1, 0, 0)
    assert abuse.settings(True).quiet_wait == 0
    for held in (idle.settings(True), storm.settings(True)):
        assert (held.repeats, held.quiet_wait) == (1, 0)
    peer = peers.settings(True)
    assert (peer.broadcast.repeats, peer.broadcast.retries, peer.broadcast.quiet_wait) == (1, 0, 0)
    assert peer.relay is None or (peer.relay.attempts, peer.relay.quiet_wait) == (1, 0)
    assert procs.wait_quiet(0.0, max_wait=0) == -1.0  # no reading either (it takes 1 s)


def test_full_settings_keep_what_the_issue_measures() -> None:
    """Fan-out at 1k/5k/10k with noise retries on, idle 10k, storm 5k in 10 s, login at cost
    12, peers' broadcast at 5k beside a relay ladder."""
    from bench import idle, login, peers, relay, scenarios, storm

    fan = scenarios.settings(False)
    assert fan.sizes == (1000, 5000, 10_000) and fan.retries > 0
    assert idle.settings(False).n == 10_000
    held = storm.settings(False)
    assert (held.n, held.spread) == (5000, 10.0)
    assert login.ROUNDS == 12
    assert len(relay.settings(False).rates) >= 4 and relay.settings(False).attempts > 1
    peer = peers.settings(False)
    assert 5000 in peer.broadcast.sizes and peer.broadcast.retries > 0
    assert peer.relay is not None and len(peer.relay.rates) >= 3
