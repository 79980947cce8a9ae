"""Connect Four rules."""

from __future__ import annotations

import pytest

from app.games.base import Invalid, State
from app.games.connect4 import ConnectFour

rules = ConnectFour()
# Fills the board without anyone making four in a row.
DRAW = [0] * 6 + [1] * 6 + [2] * 6 + [4] + [3] * 6 + [4] * 5 + [5] * 6 + [6] * 6


def play(*columns: int) -> State:
    state = rules.setup(["x", "o"], 1)
    for i, column in enumerate(columns):
        result = rules.apply(state, ["x", "o"][i % 2], {"column": column})
        assert not isinstance(result, Invalid), result
        state = result
    return state


@pytest.mark.parametrize(
    ("columns", "line"),
    [
        ((0, 0, 1, 1, 2, 2, 3), [[0, 0], [1, 0], [2, 0], [3, 0]]),  # horizontal
        ((0, 1, 0, 1, 0, 1, 0), [[0, 0], [0, 1], [0, 2], [0, 3]]),  # vertical
        ((0, 1, 1, 2, 2, 3, 2, 3, 3, 6, 3), [[0, 0], [1, 1], [2, 2], [3, 3]]),  # rising
        ((6, 5, 5, 4, 4, 3, 4, 3, 3, 0, 3), [[3, 3], [4, 2], [5, 1], [6, 0]]),  # falling
    ],
    ids=["horizontal", "vertical", "rising-diagonal", "falling-diagonal"],
)
def test_four_in_a_row_wins(columns: tuple[int, ...], line: list[list[int]]) -> None:
    before = play(*columns[:-1])
    assert rules.outcome(before).status == "ongoing"
    state = play(*columns)
    outcome = rules.outcome(state)
    assert outcome.status == "win" and outcome.winner == "x" and outcome.reason == "four in a row"
    assert state["result"]["line"] == line
    assert rules.to_move(state) == () and rules.legal_moves(state, "o") == []


def test_second_seat_can_win_and_longer_runs_are_highlighted_whole() -> None:
    state = play(6, 0, 6, 1, 5, 2, 6, 3)
    assert rules.outcome(state).winner == "o"
    five = play(0, 0, 1, 1, 3, 3, 4, 4, 2)  # x fills the gap: five in a row
    assert five["result"]["line"] == [[0, 0], [1, 0], [2, 0], [3, 0], [4, 0]]


def test_pieces_drop_to_the_lowest_free_cell() -> None:
    state = play(3, 3, 3)
    assert [state["board"][3][r] for r in range(6)] == [0, 1, 0, None, None, None]
    assert state["last"] == [3, 2]
    assert rules.to_move(state) == ("o",)


def test_full_board_is_a_draw() -> None:
    state = play(*DRAW)
    outcome = rules.outcome(state)
    assert outcome.status == "draw" and outcome.winner is None
    assert all(cell is not None for column in state["board"] for cell in column)
    assert rules.to_move(state) == ()


def test_full_column_is_illegal() -> None:
    state = play(0, 0, 0, 0, 0, 0)
    full = rules.apply(state, "x", {"column": 0})
    assert isinstance(full, Invalid) and full.code == "illegal_move"
    assert {"column": 0} not in rules.legal_moves(state, "x")
    assert len(rules.legal_moves(state, "x")) == 6


def test_bad_shapes_out_of_turn_and_after_the_end() -> None:
    state = play(3)
    for bad in ({}, {"col": 1}, {"column": 7}, {"column": -1}, {"column": "1"}, {"column": True},
                {"column": 1.0}, {"column": None}, [], "1", None):  # fmt: skip
        refused = rules.apply(state, "o", bad)  # type: ignore[arg-type]
        assert isinstance(refused, Invalid) and refused.code == "bad_move", bad
    early = rules.apply(state, "x", {"column": 0})
    assert isinstance(early, Invalid) and early.code == "not_your_turn"
    outsider = rules.apply(state, "eve", {"column": 0})
    assert isinstance(outsider, Invalid) and outsider.code == "not_a_player"
    over = rules.apply(play(0, 1, 0, 1, 0, 1, 0), "o", {"column": 1})
    assert isinstance(over, Invalid) and over.code == "game_over"


def test_apply_does_not_mutate_and_view_is_a_copy() -> None:
    state = play(2)
    rules.apply(state, "o", {"column": 2})
    assert state["board"][2] == [0, None, None, None, None, None]
    seen = rules.view(state, None)
    assert seen == state and seen is not state
    seen["board"][2][0] = 1
    assert state["board"][2][0] == 0
