"""PNG charts of benchmark results: one per scenario, drawn from its JSON (matplotlib, Agg).

``python -m bench.charts [--quick] [--out DIR] [scenario or JSON path ...]`` redraws them from
``bench/results/`` (default: every ``<name>.json`` there into ``docs/bench/``; with ``--quick``
the ``<name>-quick.json`` files into ``bench/results/charts-quick/``).

The known scenarios get a figure of their own (fan-out: deliveries/s by N per server; relay:
move round-trip p99 against the offered rate with the 15 ms target; login: IOLoop lag; the
others: their main figures as bars). Any other JSON gets a generic bar chart of one
throughput-like (and one latency-like) number per row. Drawing never raises: a chart that
cannot be drawn falls back to the generic one, or is skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.report import DOCS_CHARTS, QUICK_CHARTS, RESULTS, relative

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BASELINE_COLOR = "#9e9e9e"
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
THROUGHPUT_HINTS = ("deliveries_per_s", "throughput", "per_s", "_rate", "ops")
LATENCY_HINTS = ("p99_ms", "p99", "p50_ms", "_ms")
LABEL_KEYS = ("server", "setup", "name", "kind", "window", "label")


class NoChart(ValueError):
    """The JSON holds nothing this renderer can draw."""


# --- small helpers ----------------------------------------------------------------------------


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None (bools and non-numbers are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def short(value: float) -> str:
    """A bar label: 1.2M, 153k, 42.1, 0.87."""
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:.3g}M"
    if size >= 1e4:
        return f"{value / 1e3:.3g}k"
    return f"{value:,.0f}" if size >= 100 else f"{value:.3g}"


def is_baseline(name: str) -> bool:
    return "baseline" in name or name.startswith("tornado")


def color(name: str, index: int) -> str:
    return BASELINE_COLOR if is_baseline(name) else COLORS[index % len(COLORS)]


def grouped_bars(
    ax: Axes,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    ylabel: str,
    labels: bool = True,
) -> None:
    """Bars of each series side by side within each group; missing values leave a gap."""
    if not groups or not series:
        raise NoChart("nothing to draw")
    from matplotlib.ticker import FuncFormatter

    width = 0.8 / len(series)
    single = len(series) == 1  # one series: each bar coloured by its group (baseline grey)
    drawn = 0
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        bars = [(x, v, g) for x, v, g in zip(xs, values, groups, strict=True) if v is not None]
        if not bars:
            continue
        drawn += 1
        drawn_bars = ax.bar(
            [x for x, _, _ in bars],
            [v for _, v, _ in bars],
            width,
            label=name,
            color=[color(g, j) for j, (_, _, g) in enumerate(bars)] if single else color(name, i),
            edgecolor="white",
        )
        for bar, (_, _, g) in zip(drawn_bars, bars, strict=True):
            if is_baseline(g if single else name):
                bar.set_hatch("//")
                bar.set_facecolor(BASELINE_COLOR)
        if labels:
            ax.bar_label(drawn_bars, [short(v) for _, v, _ in bars], fontsize=7, padding=2)
    if not drawn:
        raise NoChart("no values")
    ax.set_xticks(range(len(groups)), groups)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: short(v)))
    ax.set_ylabel(ylabel)
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)


def log_axes(ax: Axes) -> None:
    """Log x and y with plain tick labels (1,000 rather than 10^3)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _pos: f"{v:,.4g}")
    for axis, scale in ((ax.xaxis, ax.set_xscale), (ax.yaxis, ax.set_yscale)):
        scale("log")
        low, high = axis.get_view_interval()
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain if high < 10 * low else NullFormatter())


def flatten(row: dict[str, Any], prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of a row, nested dicts included (lists are skipped)."""
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth < 3:
            yield from flatten(value, f"{name}.", depth + 1)
        elif not isinstance(value, list):
            yield name, value


def target(module: str, attr: str, default: float) -> float:
    """A scenario's target constant (e.g. ``bench.relay.TARGET_P99_MS``), or ``default``."""
    try:
        found = getattr(__import__(module, fromlist=[attr]), attr)
    except Exception:  # a scenario module that does not import is no reason to lose a chart
        return default
    value = number(found)
    return default if value is None else value


# --- the known scenarios ----------------------------------------------------------------------


def fanout(fig: Figure, data: dict[str, Any]) -> None:
    """Deliveries/s by N, one bar per server, the bare Tornado baseline hatched."""
    rows = [r for r in data["rows"] if number(r.get("deliveries_per_s")) is not None]
    if not rows:
        raise NoChart("no row with deliveries_per_s")
    sizes = sorted({int(r["n"]) for r in rows})
    servers = list(dict.fromkeys(r["server"] for r in rows))
    rate = {(r["server"], int(r["n"])): float(r["deliveries_per_s"]) for r in rows}
    ax = fig.subplots()
    grouped_bars(
        ax,
        [f"N={n:,}" for n in sizes],
        {s: [rate.get((s, n)) for n in sizes] for s in servers},
        ylabel="deliveries/s",
    )
    ax.set_title("Fan-out: deliveries/s by subscribers N (median run)")


def relay(fig: Figure, data: dict[str, Any]) -> None:
    """Move round-trip p99 against offered moves/s per server, with the p99 target line."""
    ax = fig.subplots()
    limit = target("bench.relay", "TARGET_P99_MS", 15.0)
    drawn = 0
    for i, (name, result) in enumerate(data["results"].items()):
        points = [
            (number(r.get("offered_per_s")), number(r.get("rtt_p99_ms")))
            for r in result.get("rows", [])
        ]
        points = [(x, y) for x, y in points if x is not None and y is not None]
        if points:
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(xs, ys, marker="o", label=name, color=color(name, i))
            drawn += 1
    if not drawn:
        raise NoChart("no step with offered_per_s and rtt_p99_ms")
    ax.axhline(limit, color="#d62728", linestyle="--", linewidth=1, label=f"{limit:g} ms target")
    log_axes(ax)
    ax.set_xlabel("offered moves/s")
    ax.set_ylabel("move round trip p99 (ms)")
    ax.set_title("Relay: move → ack p99 by offered move rate")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def login(fig: Figure, data: dict[str, Any]) -> None:
    """IOLoop lag p50/p99 during the login storm; logins/s against the bcrypt bound."""
    lag, rate = fig.subplots(1, 2, width_ratios=(2, 1))
    values = {"p50": number(data.get("lag_p50_ms")), "p99": number(data.get("lag_p99_ms"))}
    if all(v is None for v in values.values()):
        raise NoChart("no lag_p50_ms / lag_p99_ms")
    grouped_bars(lag, list(values), {"IOLoop lag": list(values.values())}, ylabel="ms")
    lag.set_title(f"IOLoop lag during {data.get('logins', '?')} logins")
    achieved = number(data.get("logins_per_s"))
    bound = number(data.get("bound_logins_per_s"))
    grouped_bars(rate, ["achieved", "bound"], {"logins/s": [achieved, bound]}, ylabel="logins/s")
    rate.set_title("logins/s vs threads ÷ hash time")


def challenge(fig: Figure, data: dict[str, Any]) -> None:
    """Accept → both ``game_started`` latency per offered rate, with the p99 target."""
    rows = data["rows"]
    if not rows:
        raise NoChart("no rows")
    ax = fig.subplots()
    groups = [f"{number(r.get('offered_per_s')) or 0:g}/s" for r in rows]
    grouped_bars(
        ax,
        groups,
        {q: [number(r.get(f"{q}_ms")) for r in rows] for q in ("p50", "p99", "p999")},
        ylabel="ms",
    )
    limit = target("bench.challenge", "TARGET_P99_MS", 30.0)
    ax.axhline(limit, color="#d62728", linestyle="--", linewidth=1, label=f"p99 target {limit:g}")
    ax.legend(fontsize=8)
    ax.set_xlabel("offered accepts/s")
    ax.set_title("Challenge accept → game_started on both sockets")


def records(fig: Figure, data: dict[str, Any]) -> None:
    """API and database p50/p99 per request."""
    api, db = data.get("api", {}), data.get("database", {})
    keys = list(dict.fromkeys([*api, *db]))
    if not keys:
        raise NoChart("no api / database timings")
    ax = fig.subplots()
    series = {
        "API p50": [number(api.get(k, {}).get("p50_ms")) for k in keys],
        "API p99": [number(api.get(k, {}).get("p99_ms")) for k in keys],
        "database p50": [number(db.get(k, {}).get("p50_ms")) for k in keys],
    }
    grouped_bars(ax, keys, series, ylabel="ms")
    ax.tick_params(axis="x", labelsize=8)
    games = data.get("seeded", {}).get("games")
    ax.set_title(f"Records: request times at {games:,} games" if games else "Records")


def cluster(fig: Figure, data: dict[str, Any]) -> None:
    """Broadcast deliveries/s per setup; relay latency same vs cross instance per pinning."""
    left, right = fig.subplots(1, 2)
    rows = [r for r in data.get("broadcast", []) if "setup" in r]
    if not rows:
        raise NoChart("no broadcast rows")
    grouped_bars(
        left,
        [str(r["setup"]) for r in rows],
        {"deliveries/s": [number(r.get("deliveries_per_s")) for r in rows]},
        ylabel="deliveries/s",
    )
    left.set_title(f"Broadcast through nginx, N={rows[0].get('n', '?')}")
    latency = data.get("relay", {})
    groups = [f"{p} {k}" for p in latency for k in ("same", "cross")]
    if groups:
        series = {
            q: [
                number(latency[p].get(k, {}).get(f"{q}_ms"))
                for p in latency
                for k in ("same", "cross")
            ]
            for q in ("p50", "p99")
        }
        grouped_bars(right, groups, series, ylabel="ms")
        right.tick_params(axis="x", labelsize=8)
        right.set_title("Game relay: same vs cross instance")
    else:
        right.set_visible(False)


def abuse(fig: Figure, data: dict[str, Any]) -> None:
    """Subscribers' p99 in each window of the slow-client and flooder parts, per server."""
    parts = [("slow", ("clean", "slow", "after")), ("flood", ("clean", "flood", "after"))]
    axes = fig.subplots(1, 2)
    drawn = 0
    for ax, (part, windows) in zip(axes, parts, strict=True):
        rows = [r for r in data.get(part, []) if "error" not in r]
        if not rows:
            ax.set_visible(False)
            continue
        series = {
            str(r.get("server")): [number(r.get(w, {}).get("p99_ms")) for w in windows]
            for r in rows
        }
        grouped_bars(ax, list(windows), series, ylabel="subscribers' p99 ms")
        ax.set_title(f"{'Slow readers' if part == 'slow' else 'Flooders'}: p99 by window")
        drawn += 1
    if not drawn:
        raise NoChart("no slow or flood rows")


RENDERERS: dict[str, Callable[[Figure, dict[str, Any]], None]] = {
    "fanout": fanout,
    "relay": relay,
    "login": login,
    "challenge": challenge,
    "records": records,
    "cluster": cluster,
    "abuse": abuse,
}


# --- any other scenario -----------------------------------------------------------------------


def find_rows(data: Any, depth: int = 0) -> list[dict[str, Any]]:
    """``data["rows"]``, or else the first list of dicts found in ``data`` (breadth first)."""
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        return data
    if not isinstance(data, dict) or depth > 3:
        return []
    rows = data.get("rows")
    if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
        return rows
    for value in data.values():
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            return value
    for value in data.values():
        if isinstance(value, dict) and (found := find_rows(value, depth + 1)):
            return found
    return []


def pick(
    keys: Iterable[str], hints: Sequence[str], scenario: str, exclude: Iterable[str] = ()
) -> str | None:
    """The key best matching ``hints`` (earlier hints first; the scenario's name breaks ties)."""
    candidates = [k for k in keys if k not in set(exclude)]
    for hint in hints:
        matching = [k for k in candidates if hint in k.lower()]
        if matching:
            own = [k for k in matching if scenario and scenario in k.lower()]
            return (own or matching)[0]
    return None


def row_label(row: dict[str, Any], index: int) -> str:
    """``server N=1,000``-style label of a row."""
    name = next((str(row[k]) for k in LABEL_KEYS if isinstance(row.get(k), str)), f"row {index}")
    n = number(row.get("n"))
    return f"{name}\nN={n:,.0f}" if n is not None else name


def generic(fig: Figure, data: dict[str, Any], scenario: str = "") -> None:
    """One throughput-like (and, when present, one latency-like) number per row, as bars."""
    rows = find_rows(data)
    flat = [dict(flatten(r)) for r in rows]
    numeric = list(
        dict.fromkeys(k for r in flat for k, v in r.items() if number(v) is not None and k != "n")
    )
    if not numeric:
        raise NoChart("no rows with numbers")
    first = pick(numeric, THROUGHPUT_HINTS, scenario) or numeric[0]
    second = pick(numeric, LATENCY_HINTS, scenario, exclude=[first])
    metrics = [first, second] if second else [first]
    labels = [row_label(r, i) for i, r in enumerate(rows)]
    axes = fig.subplots(1, len(metrics))
    for ax, metric in zip(axes if len(metrics) > 1 else [axes], metrics, strict=True):
        values = [number(r.get(metric)) for r in flat]
        grouped_bars(ax, labels, {metric: values}, ylabel=metric)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_title(metric)


# --- files ------------------------------------------------------------------------------------


def scenario_name(path: Path, data: Any) -> str:
    """The scenario of a results file: its ``scenario`` field, else the file name."""
    if isinstance(data, dict) and isinstance(data.get("scenario"), str) and data["scenario"]:
        return str(data["scenario"])
    return path.stem.removesuffix("-quick")


def _figure(title: str) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5), layout="constrained")
    fig.suptitle(title, fontsize=10)
    return fig


def render(path: Path, out_dir: Path) -> tuple[Path | None, str | None]:
    """Draw ``path``'s chart into ``out_dir/<scenario>.png``: (PNG, None) or (None, reason).

    Never raises; a known scenario whose figure cannot be drawn gets the generic one.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        return None, "matplotlib is not installed (pip install -e '.[bench]')"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"cannot read {path}: {exc}"
    name = scenario_name(path, data)
    quick = isinstance(data, dict) and bool(data.get("quick"))
    date = data.get("date", "") if isinstance(data, dict) else ""
    title = f"{name}{' (quick)' if quick else ''}  {date}".strip()
    problems: list[str] = []
    drawers: list[Callable[[Figure, dict[str, Any]], None]] = []
    if name in RENDERERS:
        drawers.append(RENDERERS[name])
    drawers.append(lambda fig, d: generic(fig, d, name))
    for draw in drawers:
        fig = _figure(title)
        try:
            draw(fig, data)
            out_dir.mkdir(parents=True, exist_ok=True)
            target_path = out_dir / f"{name}.png"
            fig.savefig(target_path, dpi=100, metadata={"Software": None})
            return target_path, "; ".join(problems) or None
        except Exception as exc:  # a malformed or unexpected JSON must not stop the run
            problems.append(f"{type(exc).__name__}: {exc}")
    return None, "no chart: " + "; ".join(problems)


def default_files(quick: bool, results: Path = RESULTS) -> list[Path]:
    """The scenario JSON files of one kind (quick or full) under ``results``."""
    files = sorted(results.glob("*.json"))
    return [
        f for f in files if f.stem.endswith("-quick") == quick and not f.stem.startswith("summary")
    ]


def main(argv: list[str] | None = None) -> int:
    """Redraw charts from existing results; exit status 1 when one could not be drawn."""
    parser = argparse.ArgumentParser(prog="python -m bench.charts", description=__doc__)
    parser.add_argument("inputs", nargs="*", help="scenario names or JSON files (default: all)")
    parser.add_argument("--quick", action="store_true", help="the -quick results")
    parser.add_argument("--out", type=Path, help="output directory")
    args = parser.parse_args(argv)
    out = args.out or (QUICK_CHARTS if args.quick else DOCS_CHARTS)
    files = [
        Path(i) if i.endswith(".json") else RESULTS / f"{i}{'-quick' if args.quick else ''}.json"
        for i in args.inputs
    ] or default_files(args.quick)
    failed = 0
    for file in files:
        png, problem = render(file, out)
        failed += png is None
        print(
            f"{relative(file)} -> {relative(png) or 'no chart'}{f' ({problem})' if problem else ''}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
