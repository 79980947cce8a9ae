"""Records: every finished game, as one player's history.

A record is a finished game seen from one player: the opponent, the result,
the outcome for that player (``win``/``loss``/``draw``), why it ended
(``win``/``draw``/``resign``/``timeout``/``abandon``), its number of moves and
its duration (last event − creation).

Pages are cut by a cursor, not an offset, so a game finishing while someone
pages does not shift or repeat rows: ``next`` is ``"<finished_at ISO>~<game_id>"``
of the last record of the page, and the following page is every record strictly
older. A bare ISO time is accepted as well (strictly before that millisecond).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.errors import Invalid, NotFound
from app.games import registry
from app.storage.base import UserRepo
from app.storage.games import GameRecord, GameRepo

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "OUTCOMES", "Page", "Query", "Records"]

OUTCOMES = ("win", "loss", "draw")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_CURSOR_SEPARATOR = "~"
_REASONS = {"resigned": "resign", "timeout": "timeout", "abandoned": "abandon"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Query:
    """Validated filters of one history page; build with :meth:`parse`."""

    kind: str | None = None
    outcome: str | None = None
    before: tuple[datetime, str | None] | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(
        cls,
        *,
        kind: str | None = None,
        outcome: str | None = None,
        before: str | None = None,
        limit: str | None = None,
    ) -> Query:
        """Filters from raw query parameters; empty strings mean "no filter".

        Raises:
            Invalid: with ``field`` ``kind``, ``outcome``, ``before`` or ``limit``.
        """
        kind = kind or None
        if kind is not None and registry.get(kind) is None:
            raise Invalid("kind", f"unknown game kind {kind!r}")
        outcome = outcome or None
        if outcome is not None and outcome not in OUTCOMES:
            raise Invalid("outcome", "outcome must be win, loss or draw")
        return cls(kind, outcome, _parse_cursor(before or None), _parse_limit(limit or None))

    def params(self, *, before: str | None) -> dict[str, str]:
        """Query parameters for the same filters at cursor ``before``."""
        raw = {"kind": self.kind, "outcome": self.outcome, "before": before}
        return {k: v for k, v in raw.items() if v}


def _parse_cursor(raw: str | None) -> tuple[datetime, str | None] | None:
    if raw is None:
        return None
    at, _, game_id = raw.partition(_CURSOR_SEPARATOR)
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise Invalid("before", "before must be the next cursor of a previous page") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment, game_id or None


def _parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise Invalid("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a player's records, JSON-ready, and the cursor of the next."""

    username: str
    games: list[dict[str, Any]]
    next: str | None


def record(game: GameRecord, player: str, moves: int | None) -> dict[str, Any]:
    """The JSON record of finished ``game`` as ``player`` sees it."""
    result = game.result or {}
    status, winner = result.get("status"), result.get("winner")
    if status == "draw" or winner is None:
        outcome = "draw"
    else:
        outcome = "win" if winner == player else "loss"
    raw_reason = str(result.get("reason") or "")
    reason = _REASONS.get(raw_reason, "draw" if outcome == "draw" else "win")
    others = [p for p in game.players if p != player]
    rules = registry.get(game.kind)
    return {
        "game_id": game.id,
        "kind": game.kind,
        "title": rules.title if rules is not None else game.kind,
        "players": list(game.players),
        "opponent": others[0] if len(others) == 1 else None,
        "result": game.result,
        "reason": reason,
        "outcome": outcome,
        "moves": moves,
        "duration_s": max(0, round((game.updated_at - game.created_at).total_seconds())),
        "finished_at": _iso(game.updated_at),
        "url": f"/game/{game.id}",
        "replay_url": f"/replay/{game.id}",
    }


class Records:
    """Players' histories over the games and users repositories."""

    def __init__(self, *, games: GameRepo, users: UserRepo) -> None:
        self._games = games
        self._users = users

    async def history(self, name: str, query: Query) -> Page:
        """One page of ``name``'s finished games, newest first.

        Raises:
            NotFound: no user is called ``name`` (code ``unknown_user``).
        """
        key = name.strip().casefold()
        user = await self._users.get(key) if 0 < len(key) <= 64 else None
        if user is None:
            raise NotFound(f"no user named {name!r}", code="unknown_user")
        # One more than asked: whether there is a next page, without a count.
        found = await self._games.finished_for(
            user.username,
            kind=query.kind,
            outcome=query.outcome,
            before=query.before,
            limit=query.limit + 1,
        )
        shown = found[: query.limit]
        games = [record(game, user.username, moves) for game, moves in shown]
        cursor = None
        if len(found) > query.limit:
            last = shown[-1][0]
            cursor = f"{_iso(last.updated_at)}{_CURSOR_SEPARATOR}{last.id}"
        return Page(user.username, games, cursor)
