"""Game clocks and abandonment deadlines: pure functions over plain dicts.

Times are integer milliseconds since the epoch, so documents store them the
same on every MongoDB server. A clock is::

    {"budget_ms": {player: ms left}, "running": {player: ms when it started},
     "move_limit_ms": ms for any single move}

A player's clock runs while the rules expect them to move (two run at once in
simultaneous games). The player loses on time at the sooner of their budget
running out and the per-move limit passing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Expiry", "expiry", "new_clock", "next_deadline", "snapshot", "stop", "tick"]

Clock = dict[str, Any]


def new_clock(
    players: Sequence[str], to_move: Iterable[str], *, budget_ms: int, move_limit_ms: int, now: int
) -> Clock:
    """A fresh clock: every player has ``budget_ms``; those to move start now."""
    return {
        "budget_ms": dict.fromkeys(players, budget_ms),
        "running": dict.fromkeys(to_move, now),
        "move_limit_ms": move_limit_ms,
    }


def tick(clock: Clock, *, mover: str | None, to_move: Iterable[str], now: int) -> Clock:
    """The clock after an event by ``mover`` at ``now``; ``to_move`` is who moves next.

    The mover is charged the time since their clock started and, if they move
    again (a completed box, say), restarts with a fresh per-move limit. Players
    who stop being expected are charged and stopped; new ones start.
    """
    budget = dict(clock["budget_ms"])
    running = dict(clock["running"])
    expected = set(to_move)
    for player, since in list(running.items()):
        if player == mover or player not in expected:
            budget[player] = max(0, budget[player] - (now - since))
            del running[player]
    for player in expected:
        running.setdefault(player, now)
    return {**clock, "budget_ms": budget, "running": running}


def stop(clock: Clock, *, now: int) -> Clock:
    """The clock of a finished game: everyone charged, nothing running."""
    return tick(clock, mover=None, to_move=(), now=now)


def _player_deadline(clock: Clock, player: str) -> int:
    since: int = clock["running"][player]
    return since + min(int(clock["budget_ms"][player]), int(clock["move_limit_ms"]))


@dataclass(frozen=True, slots=True)
class Expiry:
    """Why a game ends without a move: ``loser`` ran out of ``reason`` at ``at``."""

    loser: str | None  # None: every player abandoned (a draw)
    reason: str  # "timeout" | "abandoned"
    at: int


def next_deadline(clock: Clock | None, away: Mapping[str, int], *, abandon_ms: int) -> int | None:
    """The earliest moment something expires: a running clock or an absent player."""
    moments = [_player_deadline(clock, p) for p in clock["running"]] if clock else []
    moments.extend(since + abandon_ms for since in away.values())
    return min(moments, default=None)


def expiry(
    clock: Clock | None,
    away: Mapping[str, int],
    players: Sequence[str],
    *,
    abandon_ms: int,
    now: int,
) -> Expiry | None:
    """What has expired at ``now`` (the earliest first), or None."""
    found: list[Expiry] = []
    if clock:
        for player in clock["running"]:
            at = _player_deadline(clock, player)
            if at <= now:
                found.append(Expiry(player, "timeout", at))
    gone = {p: since + abandon_ms for p, since in away.items() if since + abandon_ms <= now}
    if gone and len(gone) == len(players):
        found.append(Expiry(None, "abandoned", max(gone.values())))
    elif gone:
        player, at = min(gone.items(), key=lambda item: item[1])
        found.append(Expiry(player, "abandoned", at))
    return min(found, key=lambda e: e.at, default=None)


def snapshot(clock: Clock | None, *, now: int) -> dict[str, Any] | None:
    """The clock as a client sees it at ``now``: time left per player and to the deadline."""
    if not clock:
        return None
    remaining = dict(clock["budget_ms"])
    deadlines = []
    for player, since in clock["running"].items():
        remaining[player] = max(0, remaining[player] - (now - since))
        deadlines.append(max(0, _player_deadline(clock, player) - now))
    return {
        "remaining_ms": remaining,
        "running": sorted(clock["running"]),
        "move_limit_ms": clock["move_limit_ms"],
        "deadline_ms": min(deadlines, default=None),
    }
