"""Tic-tac-toe: 3×3, first seat plays X and starts; three in a row wins."""

from __future__ import annotations

from collections.abc import Sequence

from app.games.base import (
    ILLEGAL,
    Invalid,
    Move,
    State,
    TwoPlayerTurns,
    clone,
    int_field,
    turn_check,
)

__all__ = ["TicTacToe"]

LINES = (
    (0, 1, 2), (3, 4, 5), (6, 7, 8),  # rows
    (0, 3, 6), (1, 4, 7), (2, 5, 8),  # columns
    (0, 4, 8), (2, 4, 6),  # diagonals
)  # fmt: skip


class TicTacToe(TwoPlayerTurns):
    kind = "tictactoe"
    title = "Tic-tac-toe"
    summary = "Three in a row on a 3×3 grid."

    def setup(self, players: Sequence[str], seed: int) -> State:
        return {
            "players": list(players),
            "seed": seed,
            "board": [None] * 9,
            "turn": 0,
            "result": None,
        }

    def apply(self, state: State, player: str, move: Move) -> State | Invalid:
        refused = turn_check(state, player)
        if refused is not None:
            return refused
        cell = int_field(move, "cell", 0, 8)
        if isinstance(cell, Invalid):
            return cell
        if state["board"][cell] is not None:
            return Invalid(ILLEGAL, "that cell is taken")
        new = clone(state)
        seat = new["turn"]
        new["board"][cell] = seat
        if any(all(new["board"][i] == seat for i in line) for line in LINES):
            new["result"] = {"status": "win", "winner": player, "reason": "three in a row"}
        elif all(mark is not None for mark in new["board"]):
            new["result"] = {"status": "draw", "winner": None, "reason": "board full"}
        else:
            new["turn"] = 1 - seat
        return new

    def legal_moves(self, state: State, player: str) -> list[Move]:
        if player not in self.to_move(state):
            return []
        return [{"cell": i} for i, mark in enumerate(state["board"]) if mark is None]
