"""Every game by kind, and the catalogue shown in the lobby."""

from __future__ import annotations

from app.games import bingo, connect4, dots, rps, snakes, tictactoe
from app.games.base import GameRules

__all__ = ["GAMES", "catalogue", "get"]

_ALL: tuple[GameRules, ...] = (
    tictactoe.TicTacToe(),
    connect4.ConnectFour(),
    dots.DotsAndBoxes(),
    snakes.SnakesAndLadders(),
    bingo.Bingo(),
    rps.RockPaperScissors(),
)  # fmt: skip

GAMES: dict[str, GameRules] = {rules.kind: rules for rules in _ALL}


def get(kind: str) -> GameRules | None:
    return GAMES.get(kind)


def catalogue() -> list[dict[str, object]]:
    """Kind, title, summary and player counts of every game, in a stable order."""
    return [
        {
            "kind": rules.kind,
            "title": rules.title,
            "summary": rules.summary,
            "min_players": rules.min_players,
            "max_players": rules.max_players,
        }
        for rules in GAMES.values()
    ]
