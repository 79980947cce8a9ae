"""Command line: ``python -m bench [scenario ...] [--quick]`` (default: every scenario)."""

from __future__ import annotations

import argparse
import sys

from bench.scenarios import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios and print each one's Markdown table."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="*",
        choices=[[], *SCENARIOS],
        metavar="scenario",
        help=f"one of: {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 2 minutes)")
    args = parser.parse_args(argv)
    for name in args.scenarios or list(SCENARIOS):
        print(f"## {name}\n\n{SCENARIOS[name](args.quick)}\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
