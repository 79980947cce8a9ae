"""Dots and Boxes rules."""

from __future__ import annotations

from app.games.base import Invalid, State
from app.games.dots import DotsAndBoxes

rules = DotsAndBoxes()
Line = tuple[str, int, int]
ALL_H: list[Line] = [("h", r, c) for r in range(5) for c in range(4)]


def play(*lines: Line) -> State:
    """Play ``lines`` in order, each by whoever is to move."""
    state = rules.setup(["ann", "bob"], 1)
    for kind, row, col in lines:
        (player,) = rules.to_move(state)
        result = rules.apply(state, player, {"line": kind, "row": row, "col": col})
        assert not isinstance(result, Invalid), result
        state = result
    return state


def test_setup_has_forty_free_lines() -> None:
    state = rules.setup(["ann", "bob"], 1)
    assert len(rules.legal_moves(state, "ann")) == 40
    assert rules.legal_moves(state, "bob") == []
    assert rules.to_move(state) == ("ann",)


def test_a_line_that_closes_nothing_passes_the_turn() -> None:
    state = play(("h", 0, 0))
    assert state["h"][0][0] == 0 and state["last"] == {"line": "h", "row": 0, "col": 0}
    assert rules.to_move(state) == ("bob",) and state["scores"] == [0, 0]


def test_completing_a_box_scores_it_and_the_mover_goes_again() -> None:
    state = play(("h", 0, 0), ("h", 1, 0), ("v", 0, 0))  # ann, bob, ann
    assert rules.to_move(state) == ("bob",)
    state = play(("h", 0, 0), ("h", 1, 0), ("v", 0, 0), ("v", 0, 1))  # bob closes (0, 0)
    assert state["owners"][0][0] == 1 and state["scores"] == [0, 1]
    assert rules.to_move(state) == ("bob",)
    waiting = rules.apply(state, "ann", {"line": "h", "row": 4, "col": 3})
    assert isinstance(waiting, Invalid) and waiting.code == "not_your_turn"


def test_one_line_can_complete_two_boxes() -> None:
    around: list[Line] = [("h", 0, 0), ("h", 1, 0), ("v", 0, 0), ("h", 0, 1), ("h", 1, 1)]
    state = play(*around, ("v", 0, 2), ("v", 0, 1))  # six plain lines, then ann's shared side
    assert state["owners"][0][:2] == [0, 0] and state["owners"][0][2:] == [None, None]
    assert state["scores"] == [2, 0] and rules.to_move(state) == ("ann",)


def test_full_board_equal_scores_draw() -> None:
    # 20 horizontal lines, then each row of vertical lines: the left edge passes the turn
    # and the next player closes the row's four boxes: bob, ann, bob, ann.
    rows = [("v", r, c) for r in range(4) for c in range(5)]
    state = play(*ALL_H, *rows)
    assert state["scores"] == [8, 8]
    assert [row.count(1) for row in state["owners"]] == [4, 0, 4, 0]
    outcome = rules.outcome(state)
    assert outcome.status == "draw" and outcome.winner is None
    assert rules.to_move(state) == () and rules.legal_moves(state, "ann") == []


def test_full_board_higher_score_wins() -> None:
    # After the horizontals ann plays v[0][0]; bob closes row 0 then opens row 1 on the
    # right (no box), ann's v[1][0] closes nothing, bob sweeps row 1 (the last line
    # closes two boxes) and so on: bob takes rows 0 and 1, then row 3, ann only row 2.
    lines: list[Line] = [("v", 0, c) for c in range(5)]
    lines += [("v", 1, 4), ("v", 1, 0), ("v", 1, 1), ("v", 1, 2), ("v", 1, 3)]
    lines += [("v", 2, c) for c in range(5)] + [("v", 3, c) for c in range(5)]
    state = play(*ALL_H, *lines)
    assert state["scores"] == [4, 12]
    outcome = rules.outcome(state)
    assert outcome.status == "win" and outcome.winner == "bob" and outcome.reason == "most boxes"
    over = rules.apply(state, "ann", {"line": "h", "row": 0, "col": 0})
    assert isinstance(over, Invalid) and over.code == "game_over"


def test_drawn_line_is_illegal() -> None:
    state = play(("v", 2, 4))
    again = rules.apply(state, "bob", {"line": "v", "row": 2, "col": 4})
    assert isinstance(again, Invalid) and again.code == "illegal_move"
    assert {"line": "v", "row": 2, "col": 4} not in rules.legal_moves(state, "bob")


def test_bad_shapes_and_outsiders() -> None:
    state = rules.setup(["ann", "bob"], 1)
    bad = [
        {},
        {"line": "h", "row": 0},
        {"line": "h", "col": 0},
        {"row": 0, "col": 0},
        {"line": "d", "row": 0, "col": 0},
        {"line": ["h"], "row": 0, "col": 0},
        {"line": None, "row": 0, "col": 0},
        {"line": "h", "row": "0", "col": 0},
        {"line": "h", "row": 0, "col": True},
        {"line": "h", "row": 0.0, "col": 0},
        {"line": "h", "row": 5, "col": 0},
        {"line": "h", "row": 0, "col": 4},
        {"line": "v", "row": 4, "col": 0},
        {"line": "v", "row": 0, "col": 5},
        {"line": "v", "row": -1, "col": 0},
        [],
        "h00",
        None,
    ]
    for move in bad:
        refused = rules.apply(state, "ann", move)  # type: ignore[arg-type]
        assert isinstance(refused, Invalid) and refused.code == "bad_move", move
    for edge in ({"line": "h", "row": 4, "col": 3}, {"line": "v", "row": 3, "col": 4}):
        assert not isinstance(rules.apply(state, "ann", edge), Invalid)
    outsider = rules.apply(state, "eve", {"line": "h", "row": 0, "col": 0})
    assert isinstance(outsider, Invalid) and outsider.code == "not_a_player"


def test_apply_does_not_mutate_and_view_is_a_copy() -> None:
    state = play(("h", 0, 0), ("h", 1, 0), ("v", 0, 0))
    rules.apply(state, "bob", {"line": "v", "row": 0, "col": 1})
    assert state["v"][0][1] is None and state["owners"][0][0] is None
    assert state["scores"] == [0, 0]
    seen = rules.view(state, "ann")
    assert seen == state and seen is not state
