"""Bingo for two: each player has a private 5×5 board of the numbers 1-25.

Players take turns calling a number not yet called; it is marked on both boards.
The first player with five completed lines (of the 5 rows, 5 columns and 2 diagonals)
wins. Tie rule: if one call gives both players five or more lines at once, the
caller wins. Once all 25 numbers are called every line is complete, so the game
always ends before running out of numbers and never ends in a draw.

Boards are dealt from ``random.Random(f"{seed}:board:{seat}")`` and stored
row-major as flat lists of 25. A view shows only the viewer's own board (with its
marks) and both line counts; the seed is hidden too, since it would reveal the
other board. When the game is over both boards (and the seed) are shown.
"""

from __future__ import annotations

import random
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

__all__ = ["Bingo"]

SIZE = 5
NUMBERS = SIZE * SIZE
TARGET = 5  # completed lines needed to win

LINES = (
    *(tuple(range(r * SIZE, (r + 1) * SIZE)) for r in range(SIZE)),  # rows
    *(tuple(range(c, NUMBERS, SIZE)) for c in range(SIZE)),  # columns
    tuple(range(0, NUMBERS, SIZE + 1)),  # diagonal
    tuple(range(SIZE - 1, NUMBERS - 1, SIZE - 1)),  # anti-diagonal
)


def deal(seed: int, seat: int) -> list[int]:
    """The board of ``seat``: 1-25 shuffled, row-major."""
    board = list(range(1, NUMBERS + 1))
    random.Random(f"{seed}:board:{seat}").shuffle(board)
    return board


def completed_lines(board: list[int], called: list[int]) -> int:
    marked = set(called)
    return sum(all(board[i] in marked for i in line) for line in LINES)


class Bingo(TwoPlayerTurns):
    kind = "bingo"
    title = "Bingo"
    summary = "Call numbers in turn; the first to complete five lines on a private 5×5 board wins."

    def setup(self, players: Sequence[str], seed: int) -> State:
        return {
            "players": list(players),
            "seed": seed,
            "boards": [deal(seed, seat) for seat in range(len(players))],
            "called": [],
            "lines": [0] * len(players),
            "turn": 0,
            "result": None,
        }

    def apply(self, state: State, player: str, move: Move) -> State | Invalid:
        refused = turn_check(state, player)
        if refused is not None:
            return refused
        number = int_field(move, "number", 1, NUMBERS)
        if isinstance(number, Invalid):
            return number
        if number in state["called"]:
            return Invalid(ILLEGAL, "that number has been called")
        new = clone(state)
        seat = new["turn"]
        new["called"].append(number)
        new["lines"] = [completed_lines(board, new["called"]) for board in new["boards"]]
        if new["lines"][seat] >= TARGET:  # the caller wins ties
            new["result"] = {"status": "win", "winner": player, "reason": "five lines"}
        elif new["lines"][1 - seat] >= TARGET:
            winner = new["players"][1 - seat]
            new["result"] = {"status": "win", "winner": winner, "reason": "five lines"}
        else:
            new["turn"] = 1 - seat
        return new

    def view(self, state: State, player: str | None) -> State:
        if state.get("result") is not None:
            return clone(state)  # game over: nothing hidden
        seen: State = {
            "players": list(state["players"]),
            "called": list(state["called"]),
            "lines": list(state["lines"]),
            "turn": state["turn"],
            "result": None,
        }
        if player in state["players"]:
            seat = state["players"].index(player)
            board = state["boards"][seat]
            called = set(state["called"])
            seen["you"] = seat
            seen["board"] = list(board)
            seen["marked"] = [number in called for number in board]
        return seen

    def legal_moves(self, state: State, player: str) -> list[Move]:
        if player not in self.to_move(state):
            return []
        called = set(state["called"])
        return [{"number": n} for n in range(1, NUMBERS + 1) if n not in called]
