"""Ratings: an Elo rating per player and game kind, leaderboards and player profiles.

Elo, as used here:

* every player starts each game kind at :data:`START` (1200);
* after a game, a player rated ``a`` against ``b`` expects
  ``E = 1 / (1 + 10 ** ((b - a) / 400))`` and scores ``S`` = 1 (win), 0.5 (draw)
  or 0 (loss); the rating moves by ``round(K * (S - E))`` with ``K`` = :data:`K` (32).
  The loser moves by exactly the opposite amount, so ratings are whole numbers and
  the sum over both players never changes. Equal ratings: ±16 on a win, 0 on a draw.

Only finished two-player games with a result (``win`` with a winner among the
players, or ``draw``) are rated. Each game is rated **exactly once**, even when
:meth:`Ratings.on_finished` runs for it twice or on two instances at once: the
game is first claimed by inserting ``rating_updates/{game_id}`` (unique ``_id``);
whoever loses the claim does nothing. Rating documents change only by ``$inc``,
so two different games of one player finishing together both count (each
computed from the ratings read just after its claim). A crash between the claim
and the two increments leaves that game unrated (never rated twice).

The overall leaderboard (no kind) ranks each player by the **mean** of their
ratings over the kinds they have played (rounded), with games and results summed
over those kinds. That row is stored per player (``ratings_overall``) and brought up
to date after both increments of a rated game (:meth:`RatingRepo.sync_overall`: a
re-aggregation written conditionally, so it never counts a game twice either).

Leaderboards are sorted by the database (rating, then games, both descending, then
the casefolded name) and cut to the limit there: one indexed sort + limit per board
on a real mongod (see :mod:`app.storage.ratings` for the indexes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.errors import Invalid
from app.games import registry
from app.services.records import Query, Records
from app.storage.games import GameRecord
from app.storage.ratings import Rating, RatingRepo

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "RECENT_GAMES",
    "START",
    "Board",
    "K",
    "Ratings",
    "elo_delta",
    "parse_board",
]

START = 1200
K = 32
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
RECENT_GAMES = 10


def elo_delta(rating: int, opponent: int, score: float, *, k: int = K) -> int:
    """How much ``rating`` moves after scoring ``score`` (1, 0.5, 0) against ``opponent``."""
    expected: float = 1.0 / (1.0 + 10.0 ** ((opponent - rating) / 400.0))
    return round(k * (score - expected))


def user_key(name: str) -> str:
    """The users' key of a name (as the accounts store it)."""
    return name.strip().casefold()


@dataclass(frozen=True, slots=True)
class Board:
    """Validated leaderboard parameters; build with :func:`parse_board`."""

    kind: str | None
    limit: int


def parse_board(*, kind: str | None, limit: str | None) -> Board:
    """Leaderboard parameters from raw query arguments ("" means overall / default).

    Raises:
        Invalid: with ``field`` ``kind`` or ``limit``.
    """
    kind = kind or None
    if kind is not None and registry.get(kind) is None:
        raise Invalid("kind", f"unknown game kind {kind!r}")
    if not limit:
        return Board(kind, DEFAULT_LIMIT)
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        raise Invalid("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return Board(kind, int(limit))


def _row(r: Rating) -> dict[str, Any]:
    return {
        "username": r.username,
        "rating": r.rating,
        "games": r.games,
        "wins": r.wins,
        "draws": r.draws,
        "losses": r.losses,
    }


class Ratings:
    """Rating updates on finished games, leaderboards and profiles."""

    def __init__(
        self,
        repo: RatingRepo,
        *,
        records: Records,
        now: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        self._repo = repo
        self._records = records
        self._now = now

    async def on_finished(self, game: GameRecord) -> None:
        """Rate finished ``game`` once (the :class:`~app.services.play.Play` finish hook).

        Safe to call any number of times, concurrently, on any instance.
        """
        result = game.result or {}
        status, winner = result.get("status"), result.get("winner")
        if len(game.players) != 2 or len(set(game.players)) != 2:
            return
        if not (status == "draw" or (status == "win" and winner in game.players)):
            return
        first, second = game.players
        mine = await self._repo.ensure(user_key(first), first, game.kind, start=START)
        theirs = await self._repo.ensure(user_key(second), second, game.kind, start=START)
        score = 0.5 if status == "draw" else (1.0 if winner == first else 0.0)
        proposed = {
            "delta": elo_delta(mine.rating, theirs.rating, score),
            "draw": int(status == "draw"),
            "won": int(score == 1.0),
            "lost": int(score == 0.0),
        }
        # The first caller's plan is recorded with the claim; every caller (a concurrent
        # one, or a retry after a crash half-way) applies that plan, each player once.
        plan = await self._repo.claim(game.id, now=self._now(), plan=proposed)
        if plan.get("applied"):
            return  # rated in one go before plans were recorded
        delta, draw, won, lost = plan["delta"], plan["draw"], plan["won"], plan["lost"]
        await self._repo.add_result(
            user_key(first),
            game.kind,
            game_id=game.id,
            delta=delta,
            wins=won,
            draws=draw,
            losses=lost,
        )
        await self._repo.add_result(
            user_key(second),
            game.kind,
            game_id=game.id,
            delta=-delta,
            wins=lost,
            draws=draw,
            losses=won,
        )
        await self._repo.sync_overall(user_key(first))
        await self._repo.sync_overall(user_key(second))

    async def leaderboard(self, board: Board) -> dict[str, Any]:
        """``{"kind", "players": [{rank, username, rating, games, wins, draws, losses}]}``."""
        if board.kind is None:
            top = await self._repo.top_overall(board.limit)
        else:
            top = await self._repo.top(board.kind, board.limit)
        players = [{"rank": i, **_row(r)} for i, r in enumerate(top, start=1)]
        return {"kind": board.kind or "", "players": players}

    async def profile(self, name: str) -> dict[str, Any]:
        """``name``'s ratings per kind, result totals and most recent games.

        Raises:
            NotFound: no user is called ``name`` (code ``unknown_user``).
        """
        recent = await self._records.history(name, Query(limit=RECENT_GAMES))
        ratings = sorted(await self._repo.of_user(user_key(recent.username)), key=lambda r: r.kind)
        kinds = []
        for r in ratings:
            rules = registry.get(r.kind)
            title = rules.title if rules is not None else r.kind
            kinds.append({"kind": r.kind, "title": title, **_row(r)})
            del kinds[-1]["username"]
        totals = {
            f: sum(getattr(r, f) for r in ratings) for f in ("games", "wins", "draws", "losses")
        }
        return {
            "username": recent.username,
            "ratings": kinds,
            "totals": totals,
            "recent": recent.games,
        }
