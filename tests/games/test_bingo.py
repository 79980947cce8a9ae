"""Bingo rules."""

from __future__ import annotations

from typing import Any

from app.games.base import Invalid, State
from app.games.bingo import LINES, Bingo, completed_lines, deal

rules = Bingo()
PLAYERS = ["ann", "bob"]


def play(state: State, *numbers: int) -> State:
    for number in numbers:
        player = rules.to_move(state)[0]
        result = rules.apply(state, player, {"number": number})
        assert not isinstance(result, Invalid), result
        state = result
    return state


def rigged(ann: list[int], bob: list[int]) -> State:
    """A fresh game with the boards replaced (rows of 5, row-major)."""
    state = rules.setup(PLAYERS, 1)
    state["boards"] = [ann, bob]
    return state


IDENTITY = list(range(1, 26))  # rows 1-5, 6-10, ...; columns 1,6,11,16,21 ...
# 21-25 on the main diagonal, 1-20 elsewhere in order: every line needs one of 21-25
DIAG = [
    21, 1, 2, 3, 4,
    5, 22, 6, 7, 8,
    9, 10, 23, 11, 12,
    13, 14, 15, 24, 16,
    17, 18, 19, 20, 25,
]  # fmt: skip


def test_boards_are_seeded_permutations_per_player() -> None:
    state = rules.setup(PLAYERS, 42)
    ann, bob = state["boards"]
    assert sorted(ann) == sorted(bob) == IDENTITY
    assert ann != bob
    assert rules.setup(PLAYERS, 42) == state
    assert rules.setup(PLAYERS, 43)["boards"] != state["boards"]
    assert deal(42, 0) == ann


def test_lines_are_rows_columns_and_diagonals() -> None:
    assert len(LINES) == 12 and all(len(line) == 5 for line in LINES)
    assert len(set(LINES)) == 12
    assert (0, 6, 12, 18, 24) in LINES and (4, 8, 12, 16, 20) in LINES
    assert completed_lines(IDENTITY, [1, 2, 3, 4, 5]) == 1  # a row
    assert completed_lines(IDENTITY, [1, 6, 11, 16, 21]) == 1  # a column
    assert completed_lines(IDENTITY, [1, 7, 13, 19, 25]) == 1  # diagonal
    assert completed_lines(IDENTITY, [5, 9, 13, 17, 21]) == 1  # anti-diagonal
    assert completed_lines(IDENTITY, [1, 2, 3, 4, 6, 7, 8, 9]) == 0
    assert completed_lines(IDENTITY, IDENTITY) == 12
    # row 1 and column 1 share the corner: 9 numbers, 2 lines
    assert completed_lines(IDENTITY, [1, 2, 3, 4, 5, 6, 11, 16, 21]) == 2
    assert completed_lines(DIAG, list(range(1, 21))) == 0


def test_calls_mark_both_boards_and_count_lines() -> None:
    state = play(rigged(IDENTITY, DIAG), 1, 2, 3, 4, 5)
    assert state["called"] == [1, 2, 3, 4, 5]
    assert state["lines"] == [1, 0]  # ann's first row; bob's first row still needs 21
    assert rules.view(state, "ann")["marked"] == [True] * 5 + [False] * 20
    assert rules.view(state, "bob")["marked"] == [n in {1, 2, 3, 4, 5} for n in DIAG]
    state = play(state, 6, 11, 16, 21)
    assert state["lines"] == [2, 1]  # ann: row and column 1; bob: row 1
    assert rules.outcome(state).status == "ongoing"


def test_first_to_five_lines_wins() -> None:
    state = play(rigged(IDENTITY, DIAG), *range(1, 21))
    assert state["lines"] == [4, 0]  # ann: four rows
    assert rules.to_move(state) == ("ann",)
    state = play(state, 21)  # ann: + column 1 and the anti-diagonal
    assert state["lines"] == [6, 2]
    assert rules.outcome(state).status == "win"
    assert rules.outcome(state).winner == "ann" and rules.outcome(state).reason == "five lines"
    assert rules.to_move(state) == ()


def test_the_other_player_wins_when_only_their_board_reaches_five() -> None:
    state = play(rigged(DIAG, IDENTITY), *range(1, 21))
    assert state["lines"] == [0, 4]
    won = play(state, 21)  # ann calls 21, completing bob's fifth and sixth lines
    assert won["lines"] == [2, 6]
    assert rules.outcome(won).winner == "bob"


def test_a_call_completing_five_lines_for_both_goes_to_the_caller() -> None:
    # identical boards: every call completes the same lines for both players
    state = play(rigged(IDENTITY, list(IDENTITY)), *range(1, 21))
    assert state["lines"] == [4, 4] and rules.to_move(state) == ("ann",)
    won = play(state, 21)
    assert won["lines"] == [6, 6]
    assert rules.outcome(won).winner == "ann"
    # the same with bob calling: columns 1-2, row 1 and the anti-diagonal, then column 3
    calls = [1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 16, 17, 18, 19, 21, 22, 5]
    state = play(rigged(IDENTITY, list(IDENTITY)), *calls)
    assert state["lines"] == [4, 4] and rules.to_move(state) == ("bob",)
    won = play(state, 23)
    assert won["lines"] == [5, 5]
    assert rules.outcome(won).winner == "bob"


def test_repeats_out_of_turn_bad_shapes_outsiders_and_game_over() -> None:
    state = play(rules.setup(PLAYERS, 3), 7)
    again = rules.apply(state, "bob", {"number": 7})
    assert isinstance(again, Invalid) and again.code == "illegal_move"
    early = rules.apply(state, "ann", {"number": 8})
    assert isinstance(early, Invalid) and early.code == "not_your_turn"
    outsider = rules.apply(state, "mallory", {"number": 8})
    assert isinstance(outsider, Invalid) and outsider.code == "not_a_player"
    bads: tuple[Any, ...] = (
        {},
        {"number": 0},
        {"number": 26},
        {"number": "8"},
        {"number": True},
        [],
        None,
    )
    for bad in bads:
        refused = rules.apply(state, "bob", bad)
        assert isinstance(refused, Invalid) and refused.code == "bad_move"
    assert {"number": 7} not in rules.legal_moves(state, "bob")
    assert len(rules.legal_moves(state, "bob")) == 24 and rules.legal_moves(state, "ann") == []
    over = play(rigged(IDENTITY, DIAG), *range(1, 22))
    refused = rules.apply(over, "bob", {"number": 22})
    assert isinstance(refused, Invalid) and refused.code == "game_over"
    assert rules.legal_moves(over, "bob") == []


def test_views_hide_the_other_board_and_the_seed_until_the_end() -> None:
    state = play(rules.setup(PLAYERS, 5), 1, 2)
    ann = rules.view(state, "ann")
    assert ann["board"] == state["boards"][0] and ann["you"] == 0
    assert "boards" not in ann and "seed" not in ann
    assert ann["called"] == [1, 2] and ann["lines"] == state["lines"]
    bob = rules.view(state, "bob")
    assert bob["board"] == state["boards"][1] and bob["you"] == 1
    spectator = rules.view(state, None)
    assert not {"board", "boards", "marked", "seed", "you"} & spectator.keys()
    assert rules.view(state, "mallory") == spectator
    over = play(rigged(IDENTITY, DIAG), *range(1, 22))
    for who in ("ann", "bob", None):
        assert rules.view(over, who)["boards"] == [IDENTITY, DIAG]


def test_apply_does_not_mutate() -> None:
    state = rules.setup(PLAYERS, 9)
    before = rules.setup(PLAYERS, 9)
    play(state, 4)
    assert state == before
