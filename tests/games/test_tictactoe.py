"""Tic-tac-toe rules."""

from __future__ import annotations

from app.games.base import Invalid, State
from app.games.tictactoe import TicTacToe

rules = TicTacToe()


def play(*cells: int) -> State:
    state = rules.setup(["x", "o"], 1)
    for i, cell in enumerate(cells):
        result = rules.apply(state, ["x", "o"][i % 2], {"cell": cell})
        assert not isinstance(result, Invalid), result
        state = result
    return state


def test_row_wins() -> None:
    state = play(0, 3, 1, 4, 2)
    assert rules.outcome(state).winner == "x" and rules.outcome(state).status == "win"
    assert rules.to_move(state) == ()


def test_full_board_is_a_draw() -> None:
    state = play(0, 1, 2, 4, 3, 5, 7, 6, 8)
    assert rules.outcome(state).status == "draw" and rules.outcome(state).winner is None


def test_taken_cell_out_of_turn_and_bad_shapes() -> None:
    state = play(4)
    taken = rules.apply(state, "o", {"cell": 4})
    assert isinstance(taken, Invalid) and taken.code == "illegal_move"
    early = rules.apply(state, "x", {"cell": 0})
    assert isinstance(early, Invalid) and early.code == "not_your_turn"
    for bad in ({}, {"cell": 9}, {"cell": "1"}, {"cell": True}, []):
        refused = rules.apply(state, "o", bad)  # type: ignore[arg-type]
        assert isinstance(refused, Invalid) and refused.code == "bad_move"
    over = rules.apply(play(0, 3, 1, 4, 2), "o", {"cell": 8})
    assert isinstance(over, Invalid) and over.code == "game_over"
