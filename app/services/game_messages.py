"""The JSON messages a game sends its players (docs/protocol.md, "The game socket").

Pure functions of stored records: the same event renders the same message live
and in a replay, so a resuming client cannot tell them apart.
"""

from __future__ import annotations

from typing import Any

from app.games.base import GameRules
from app.services import clocks
from app.storage.games import ChatLine, GameRecord, GameStatus

__all__ = ["chat_message", "player_message", "state_message"]


def state_message(
    game: GameRecord,
    rules: GameRules,
    viewer: str | None,
    *,
    now_ms: int | None = None,
    abandon_ms: int = 0,
    replay: bool = False,
) -> dict[str, Any]:
    """The ``state`` message for ``viewer`` (None: a spectator's view).

    Without ``now_ms`` the clock and absences are left out (a past position);
    absent players are listed with the milliseconds until they forfeit.
    """
    last = game.last
    last_json = None
    if last is not None:
        secret = rules.secret_moves and last.type == "move" and last.player != viewer
        last_json = {
            "seq": last.seq,
            "player": last.player,
            "type": last.type,
            "move": None if secret else last.move,
            "at": last.at.isoformat(),
        }
    finished = game.status is GameStatus.FINISHED
    away: dict[str, int] = {}
    if now_ms is not None and not finished:
        away = {p: max(0, since + abandon_ms - now_ms) for p, since in game.away.items()}
    return {
        "type": "state",
        "game": game.id,
        "kind": game.kind,
        "players": list(game.players),
        "seq": game.seq,
        "version": game.version,
        "status": game.status.value,
        "view": rules.view(game.state, viewer),
        "to_move": [] if finished else list(rules.to_move(game.state)),
        "last": last_json,
        "result": game.result,
        "draw_offer": game.draw_offer,
        "clock": None if now_ms is None else clocks.snapshot(game.clock, now=now_ms),
        "away": away,
        "replay": replay,
    }


def chat_message(line: ChatLine) -> dict[str, Any]:
    return {
        "type": "chat",
        "game": line.game_id,
        "n": line.n,
        "from": line.sender,
        "text": line.text,
        "at": line.at.isoformat(),
    }


def player_message(
    game_id: str, player: str, *, connected: bool, forfeit_ms: int | None
) -> dict[str, Any]:
    """``player``'s game socket closed (``forfeit_ms`` until they lose) or opened again."""
    return {
        "type": "player",
        "game": game_id,
        "player": player,
        "connected": connected,
        "forfeit_in_ms": forfeit_ms,
    }
