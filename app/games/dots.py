"""Dots and Boxes: a 5×5 grid of dots (4×4 boxes, 40 lines); most boxes wins.

Coordinates: dots are ``(row, col)`` with row 0 at the top. Horizontal line
``h[r][c]`` joins dots ``(r, c)`` and ``(r, c + 1)`` (r 0-4, c 0-3); vertical line
``v[r][c]`` joins dots ``(r, c)`` and ``(r + 1, c)`` (r 0-3, c 0-4). Box ``(r, c)``
(r, c 0-3) is bounded by ``h[r][c]``, ``h[r + 1][c]``, ``v[r][c]`` and ``v[r][c + 1]``.
``h`` and ``v`` hold the seat index that drew each line (None: not drawn),
``owners[r][c]`` the seat that completed each box, ``scores`` the boxes per seat.
Completing a box scores it and the mover plays again.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.games.base import (
    BAD_MOVE,
    ILLEGAL,
    Invalid,
    Move,
    State,
    TwoPlayerTurns,
    clone,
    int_field,
    turn_check,
)

__all__ = ["DotsAndBoxes"]

BOXES = 4  # boxes per side; dots per side is BOXES + 1


def boxes_touching(kind: str, row: int, col: int) -> list[tuple[int, int]]:
    """The (at most two) boxes bordered by line ``kind[row][col]``."""
    dr, dc = (1, 0) if kind == "h" else (0, 1)  # the box above / to the left, and this one
    candidates = [(row - dr, col - dc), (row, col)]
    return [(r, c) for r, c in candidates if 0 <= r < BOXES and 0 <= c < BOXES]


def box_closed(state: State, row: int, col: int) -> bool:
    h, v = state["h"], state["v"]
    edges = (h[row][col], h[row + 1][col], v[row][col], v[row][col + 1])
    return all(edge is not None for edge in edges)


class DotsAndBoxes(TwoPlayerTurns):
    kind = "dots"
    title = "Dots and Boxes"
    summary = "Take turns drawing lines on a 5×5 grid of dots; close a box to score and go again."

    def setup(self, players: Sequence[str], seed: int) -> State:
        return {
            "players": list(players),
            "seed": seed,
            "h": [[None] * BOXES for _ in range(BOXES + 1)],
            "v": [[None] * (BOXES + 1) for _ in range(BOXES)],
            "owners": [[None] * BOXES for _ in range(BOXES)],
            "scores": [0, 0],
            "last": None,
            "turn": 0,
            "result": None,
        }

    def apply(self, state: State, player: str, move: Move) -> State | Invalid:
        refused = turn_check(state, player)
        if refused is not None:
            return refused
        if not isinstance(move, dict):
            return Invalid(BAD_MOVE, "a move is a JSON object")
        kind = move.get("line")
        if not isinstance(kind, str) or kind not in ("h", "v"):
            return Invalid(BAD_MOVE, "'line' must be 'h' or 'v'")
        row = int_field(move, "row", 0, BOXES if kind == "h" else BOXES - 1)
        if isinstance(row, Invalid):
            return row
        col = int_field(move, "col", 0, BOXES - 1 if kind == "h" else BOXES)
        if isinstance(col, Invalid):
            return col
        if state[kind][row][col] is not None:
            return Invalid(ILLEGAL, "that line is already drawn")
        new = clone(state)
        seat = new["turn"]
        new[kind][row][col] = seat
        new["last"] = {"line": kind, "row": row, "col": col}
        closed = [(r, c) for r, c in boxes_touching(kind, row, col) if box_closed(new, r, c)]
        for r, c in closed:
            new["owners"][r][c] = seat
        new["scores"][seat] += len(closed)
        if all(owner is not None for owners in new["owners"] for owner in owners):
            mine, theirs = new["scores"][seat], new["scores"][1 - seat]
            if mine == theirs:
                new["result"] = {"status": "draw", "winner": None, "reason": "equal boxes"}
            else:
                winner = player if mine > theirs else new["players"][1 - seat]
                new["result"] = {"status": "win", "winner": winner, "reason": "most boxes"}
        elif not closed:
            new["turn"] = 1 - seat
        return new

    def legal_moves(self, state: State, player: str) -> list[Move]:
        if player not in self.to_move(state):
            return []
        return [
            {"line": kind, "row": r, "col": c}
            for kind in ("h", "v")
            for r, lines in enumerate(state[kind])
            for c, drawn in enumerate(lines)
            if drawn is None
        ]
