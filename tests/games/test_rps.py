"""Rock-paper-scissors rules."""

from __future__ import annotations

from typing import Any

from app.games.base import Invalid, State
from app.games.rps import MAX_ROUNDS, RockPaperScissors

rules = RockPaperScissors()
PLAYERS = ["ann", "bob"]


def choose(state: State, player: str, choice: str) -> State:
    result = rules.apply(state, player, {"choice": choice})
    assert not isinstance(result, Invalid), result
    return result


def rounds(*pairs: tuple[str, str], state: State | None = None) -> State:
    state = rules.setup(PLAYERS, 1) if state is None else state
    for ann, bob in pairs:
        state = choose(choose(state, "ann", ann), "bob", bob)
    return state


def test_both_move_at_once_in_either_order() -> None:
    state = rules.setup(PLAYERS, 1)
    assert rules.to_move(state) == ("ann", "bob")
    assert len(rules.legal_moves(state, "ann")) == len(rules.legal_moves(state, "bob")) == 3
    after_bob = choose(state, "bob", "rock")
    assert rules.to_move(after_bob) == ("ann",)
    assert rules.legal_moves(after_bob, "bob") == []
    resolved = choose(after_bob, "ann", "paper")
    assert resolved["rounds"] == [{"choices": ["paper", "rock"], "winner": "ann"}]
    assert resolved["score"] == [1, 0] and rules.to_move(resolved) == ("ann", "bob")
    assert resolved == rounds(("paper", "rock"))


def test_round_resolution() -> None:
    state = rounds(("rock", "scissors"), ("rock", "paper"), ("scissors", "scissors"))
    assert [r["winner"] for r in state["rounds"]] == ["ann", "bob", None]
    assert state["score"] == [1, 1]
    assert [r["choices"] for r in state["rounds"]] == [
        ["rock", "scissors"],
        ["rock", "paper"],
        ["scissors", "scissors"],
    ]
    state = rounds(("paper", "rock"), ("scissors", "paper"), state=state)
    assert state["score"] == [3, 1]


def test_first_to_three_round_wins_takes_the_game_and_draws_do_not_count() -> None:
    state = rounds(("rock", "rock"), ("rock", "scissors"), ("paper", "paper"))
    state = rounds(("paper", "scissors"), ("scissors", "paper"), ("paper", "scissors"), state=state)
    assert rules.outcome(state).status == "ongoing" and state["score"] == [2, 2]
    state = rounds(("rock", "paper"), state=state)
    outcome = rules.outcome(state)
    assert outcome.status == "win" and outcome.winner == "bob"
    assert outcome.reason == "three rounds won" and len(state["rounds"]) == 7
    assert rules.to_move(state) == () and rules.legal_moves(state, "ann") == []


def test_round_cap_leader_wins_or_draw() -> None:
    draws = [("rock", "rock")] * (MAX_ROUNDS - 1)
    level = rounds(*draws, ("paper", "paper"))
    assert rules.outcome(level).status == "draw" and rules.outcome(level).winner is None
    assert len(level["rounds"]) == MAX_ROUNDS and rules.to_move(level) == ()
    ahead = rounds(("rock", "scissors"), *draws[1:], ("paper", "paper"))
    assert len(ahead["rounds"]) == MAX_ROUNDS
    assert rules.outcome(ahead).status == "win" and rules.outcome(ahead).winner == "ann"
    almost = rounds(*draws)
    assert rules.outcome(almost).status == "ongoing"


def test_repeat_choice_bad_shapes_outsiders_and_game_over() -> None:
    state = choose(rules.setup(PLAYERS, 1), "ann", "rock")
    again = rules.apply(state, "ann", {"choice": "paper"})
    assert isinstance(again, Invalid) and again.code == "not_your_turn"
    outsider = rules.apply(state, "mallory", {"choice": "paper"})
    assert isinstance(outsider, Invalid) and outsider.code == "not_a_player"
    for bad in ({}, {"choice": "lizard"}, {"choice": "Rock"}, {"choice": 1}, {"choice": ["rock"]}):
        refused = rules.apply(state, "bob", bad)
        assert isinstance(refused, Invalid) and refused.code == "bad_move"
    bad_shapes: tuple[Any, ...] = ([], None, "rock")
    for bad_shape in bad_shapes:
        refused = rules.apply(state, "bob", bad_shape)
        assert isinstance(refused, Invalid) and refused.code == "bad_move"
    over = rounds(("rock", "scissors"), ("rock", "scissors"), ("rock", "scissors"))
    for player in PLAYERS:
        refused = rules.apply(over, player, {"choice": "rock"})
        assert isinstance(refused, Invalid) and refused.code == "game_over"


def test_views_hide_pending_choices() -> None:
    state = choose(rounds(("rock", "paper")), "ann", "scissors")
    ann = rules.view(state, "ann")
    assert ann["your_choice"] == "scissors" and ann["chosen"] == [True, False]
    bob = rules.view(state, "bob")
    assert bob["your_choice"] is None and bob["chosen"] == [True, False]
    spectator = rules.view(state, None)
    assert "your_choice" not in spectator and spectator["chosen"] == [True, False]
    for seen in (ann, bob, spectator):
        assert "pending" not in seen
        assert "scissors" not in str(seen).replace("'your_choice': 'scissors'", "")
        assert seen["rounds"] == [{"choices": ["rock", "paper"], "winner": "bob"}]


def test_apply_does_not_mutate() -> None:
    state = rules.setup(PLAYERS, 1)
    choose(choose(state, "ann", "rock"), "bob", "paper")
    assert state == rules.setup(PLAYERS, 1)
