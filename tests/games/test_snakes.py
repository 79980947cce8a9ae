"""Snakes and Ladders rules."""

from __future__ import annotations

import itertools

import pytest

from app.games.base import Invalid, State
from app.games.snakes import LADDERS, MAX_ROLLS, SNAKES, SnakesAndLadders, die

rules = SnakesAndLadders()
PLAYERS = ["ann", "bob"]


def rigged(*rolls: int, positions: tuple[int, int] = (0, 0), turn: int = 0) -> State:
    """A state whose next rolls are ``rolls`` (the first seed that gives them)."""
    state = rules.setup(PLAYERS, 0)
    state["positions"], state["turn"] = list(positions), turn
    state["seed"] = next(
        seed
        for seed in itertools.count()
        if all(die(seed, state["rolls"] + i) == r for i, r in enumerate(rolls))
    )
    return state


def roll(state: State, player: str) -> State:
    result = rules.apply(state, player, {"roll": True})
    assert not isinstance(result, Invalid), result
    return result


def test_the_board_is_classic_and_never_chains() -> None:
    assert len(LADDERS) == 9 and len(SNAKES) == 10
    assert all(foot < top for foot, top in LADDERS.items())
    assert all(tail < head for head, tail in SNAKES.items())
    ends = set(LADDERS.values()) | set(SNAKES.values())
    assert not ends & (set(LADDERS) | set(SNAKES))


def test_a_ladder_climbs() -> None:
    state = roll(rigged(1), "ann")
    assert state["positions"] == [38, 0] and state["turn"] == 1
    assert state["history"] == [{"player": "ann", "roll": 1, "from": 0, "to": 38, "via": "ladder"}]


def test_a_snake_slides() -> None:
    state = roll(rigged(3, positions=(0, 95), turn=1), "bob")
    assert state["positions"] == [0, 78] and state["turn"] == 0
    assert state["history"][-1] == {
        "player": "bob",
        "roll": 3,
        "from": 95,
        "to": 78,
        "via": "snake",
    }


def test_plain_square_has_no_via() -> None:
    state = roll(rigged(2), "ann")
    assert state["history"][-1]["via"] is None and state["positions"] == [2, 0]


def test_exact_roll_finishes_and_overshoot_stays() -> None:
    over = roll(rigged(4, positions=(97, 0)), "ann")
    assert over["positions"] == [97, 0] and over["turn"] == 1 and over["result"] is None
    assert over["history"][-1] == {"player": "ann", "roll": 4, "from": 97, "to": 97, "via": None}
    won = roll(rigged(3, positions=(97, 0)), "ann")
    assert rules.outcome(won).status == "win" and rules.outcome(won).winner == "ann"
    assert rules.to_move(won) == () and rules.legal_moves(won, "bob") == []


def test_the_ladder_to_100_wins() -> None:
    won = roll(rigged(5, positions=(75, 0)), "ann")
    assert won["positions"][0] == 100 and rules.outcome(won).winner == "ann"


def test_a_six_rolls_again_but_not_a_third_time() -> None:
    state = roll(rigged(6, 6, 6, positions=(2, 0)), "ann")
    assert state["turn"] == 0 and state["sixes"] == 1 and state["positions"] == [8, 0]
    assert rules.to_move(state) == ("ann",)
    state = roll(state, "ann")
    assert state["turn"] == 0 and state["sixes"] == 2 and state["positions"] == [14, 0]
    state = roll(state, "ann")  # third 6: moved, then the turn passes
    assert state["turn"] == 1 and state["sixes"] == 0 and state["positions"] == [20, 0]


def test_a_six_then_another_number_passes_the_turn() -> None:
    state = roll(roll(rigged(6, 2, positions=(2, 0)), "ann"), "ann")
    assert state["turn"] == 1 and state["sixes"] == 0 and state["positions"] == [10, 0]


def test_a_six_that_overshoots_still_rolls_again() -> None:
    state = roll(rigged(6, positions=(97, 0)), "ann")
    assert state["positions"] == [97, 0] and state["turn"] == 0


def play(seed: int, plies: int) -> State:
    state = rules.setup(PLAYERS, seed)
    for _ in range(plies):
        if rules.outcome(state).finished:
            break
        state = roll(state, rules.to_move(state)[0])
    return state


def test_same_seed_same_rolls_different_seeds_differ() -> None:
    assert play(42, 30) == play(42, 30)
    first = [[h["roll"] for h in play(seed, 10)["history"]] for seed in range(5)]
    assert len({tuple(rolls) for rolls in first}) == 5
    assert [die(7, n) for n in range(20)] == [die(7, n) for n in range(20)]


def test_games_end_well_within_the_cap() -> None:
    lengths = [play(seed, MAX_ROLLS)["rolls"] for seed in range(500)]
    assert all(rules.outcome(play(seed, MAX_ROLLS)).finished for seed in range(20))
    assert max(lengths) < 400 and sum(lengths) / len(lengths) < 100


def test_the_roll_cap_gives_the_win_to_the_nearest() -> None:
    state = rigged(2, positions=(40, 60))
    state["rolls"] = MAX_ROLLS - 1
    state["seed"] = next(s for s in itertools.count() if die(s, MAX_ROLLS - 1) == 2)
    ended = roll(state, "ann")
    assert rules.outcome(ended).status == "win" and rules.outcome(ended).winner == "bob"
    state["positions"] = [58, 60]  # 58 + 2 = 60: level
    level = roll(state, "ann")
    assert rules.outcome(level).status == "draw" and rules.outcome(level).winner is None


@pytest.mark.parametrize("bad", [{"roll": False}, {}, {"roll": 6}, {"roll": 1}, {"roll": "true"},
                                 {"roll": True, "value": 6}, [], None, "roll"])  # fmt: skip
def test_bad_shapes_are_refused(bad: object) -> None:
    refused = rules.apply(rules.setup(PLAYERS, 1), "ann", bad)  # type: ignore[arg-type]
    assert isinstance(refused, Invalid) and refused.code == "bad_move"


def test_out_of_turn_outsiders_and_after_game_over() -> None:
    state = rules.setup(PLAYERS, 1)
    early = rules.apply(state, "bob", {"roll": True})
    assert isinstance(early, Invalid) and early.code == "not_your_turn"
    outsider = rules.apply(state, "mallory", {"roll": True})
    assert isinstance(outsider, Invalid) and outsider.code == "not_a_player"
    assert rules.legal_moves(state, "ann") == [{"roll": True}]
    assert rules.legal_moves(state, "bob") == []
    won = roll(rigged(3, positions=(97, 0)), "ann")
    over = rules.apply(won, "bob", {"roll": True})
    assert isinstance(over, Invalid) and over.code == "game_over"


def test_apply_does_not_mutate_and_view_is_a_copy() -> None:
    state = rigged(1)
    snapshot = rules.view(state, None)
    assert snapshot == state and snapshot is not state
    roll(state, "ann")
    assert state == snapshot


def test_history_keeps_only_the_last_rolls() -> None:
    state = play(3, 40)
    assert 0 < len(state["history"]) <= 10
    assert (
        state["history"][-1]["to"]
        == state["positions"][PLAYERS.index(state["history"][-1]["player"])]
    )
