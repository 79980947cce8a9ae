"""Connect Four: 7 columns × 6 rows, first seat starts; four in a row wins.

The board is a list of 7 columns, each a list of 6 cells from the bottom up:
``board[c][r]`` is the seat index (0 or 1) of the piece in column ``c``, row ``r``
(row 0 is the bottom), or None. ``last`` is the ``[c, r]`` of the latest piece and a
win's result carries ``"line"``, the ``[c, r]`` cells of the winning run.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.games.base import (
    ILLEGAL,
    ONGOING,
    Invalid,
    Move,
    Outcome,
    State,
    TwoPlayerTurns,
    clone,
    int_field,
    turn_check,
)

__all__ = ["ConnectFour"]

COLUMNS = 7
ROWS = 6
DIRECTIONS = ((1, 0), (0, 1), (1, 1), (1, -1))  # horizontal, vertical, both diagonals


def winning_line(board: list[list[int | None]], col: int, row: int) -> list[list[int]] | None:
    """The run of four or more through ``(col, row)`` in one direction, if any."""
    seat = board[col][row]
    for dc, dr in DIRECTIONS:
        line = [[col, row]]
        for sign in (1, -1):
            c, r = col + sign * dc, row + sign * dr
            while 0 <= c < COLUMNS and 0 <= r < ROWS and board[c][r] == seat:
                line.append([c, r])
                c, r = c + sign * dc, r + sign * dr
        if len(line) >= 4:
            return sorted(line)
    return None


class ConnectFour(TwoPlayerTurns):
    kind = "connect4"
    title = "Connect Four"
    summary = "Drop pieces into a 7×6 grid; four in a row wins."

    def setup(self, players: Sequence[str], seed: int) -> State:
        return {
            "players": list(players),
            "seed": seed,
            "board": [[None] * ROWS for _ in range(COLUMNS)],
            "last": None,
            "turn": 0,
            "result": None,
        }

    def apply(self, state: State, player: str, move: Move) -> State | Invalid:
        refused = turn_check(state, player)
        if refused is not None:
            return refused
        col = int_field(move, "column", 0, COLUMNS - 1)
        if isinstance(col, Invalid):
            return col
        if state["board"][col][-1] is not None:
            return Invalid(ILLEGAL, "that column is full")
        new = clone(state)
        seat = new["turn"]
        row = new["board"][col].index(None)
        new["board"][col][row] = seat
        new["last"] = [col, row]
        line = winning_line(new["board"], col, row)
        if line is not None:
            new["result"] = {
                "status": "win",
                "winner": player,
                "reason": "four in a row",
                "line": line,
            }
        elif all(column[-1] is not None for column in new["board"]):
            new["result"] = {"status": "draw", "winner": None, "reason": "board full"}
        else:
            new["turn"] = 1 - seat
        return new

    def outcome(self, state: State) -> Outcome:
        result = state.get("result")
        if result is None:
            return ONGOING
        return Outcome(result["status"], result["winner"], result["reason"])

    def legal_moves(self, state: State, player: str) -> list[Move]:
        if player not in self.to_move(state):
            return []
        return [{"column": c} for c, column in enumerate(state["board"]) if column[-1] is None]
