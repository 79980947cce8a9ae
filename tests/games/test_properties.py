"""Properties every registered game must have (hypothesis drives random playouts)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.games.base import GameRules, Invalid, Move, State
from app.games.registry import GAMES

PLAYERS = ["ann", "bob"]
MAX_PLIES = 2_000

games = pytest.mark.parametrize("rules", list(GAMES.values()), ids=list(GAMES))
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def playout(
    rules: GameRules, seed: int, data: st.DataObject
) -> tuple[State, list[tuple[str, Move]]]:
    """Play random legal moves until the game ends; returns the final state and the moves."""
    state = rules.setup(PLAYERS, seed)
    moves: list[tuple[str, Move]] = []
    for _ in range(MAX_PLIES):
        if rules.outcome(state).finished:
            return state, moves
        movers = rules.to_move(state)
        assert movers, "an unfinished game must expect someone to move"
        player = data.draw(st.sampled_from(sorted(movers)))
        legal = rules.legal_moves(state, player)
        assert legal, f"{player} must have a legal move"
        move = data.draw(st.sampled_from(legal))
        before = json.dumps(state, sort_keys=True)
        after = rules.apply(state, player, move)
        assert not isinstance(after, Invalid), f"legal move {move} refused: {after}"
        assert json.dumps(state, sort_keys=True) == before, "apply must not mutate its input"
        state = after
        moves.append((player, move))
    raise AssertionError(f"{rules.kind} did not finish within {MAX_PLIES} plies")


@games
@fast
@given(seed=st.integers(0, 2**31), data=st.data())
def test_random_legal_playouts_end_with_a_valid_outcome(
    rules: GameRules, seed: int, data: st.DataObject
) -> None:
    state, _ = playout(rules, seed, data)
    outcome = rules.outcome(state)
    assert outcome.status in ("win", "draw")
    assert (outcome.winner in PLAYERS) if outcome.status == "win" else outcome.winner is None
    assert rules.to_move(state) == ()
    json.dumps(state)  # stays JSON-serialisable


@games
@fast
@given(seed=st.integers(0, 2**31), data=st.data())
def test_replaying_the_moves_from_the_seed_reproduces_the_state(
    rules: GameRules, seed: int, data: st.DataObject
) -> None:
    state, moves = playout(rules, seed, data)
    replayed = rules.setup(PLAYERS, seed)
    for player, move in moves:
        result = rules.apply(replayed, player, move)
        assert not isinstance(result, Invalid)
        replayed = result
    assert replayed == state


junk: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


@games
@fast
@given(seed=st.integers(0, 2**31), move=junk, who=st.sampled_from([*PLAYERS, "mallory"]))
def test_bad_moves_are_returned_as_invalid_never_raised(
    rules: GameRules, seed: int, move: Any, who: str
) -> None:
    state = rules.setup(PLAYERS, seed)
    result = rules.apply(state, who, move)
    if isinstance(result, Invalid):
        assert result.code in {
            "bad_move",
            "illegal_move",
            "not_your_turn",
            "not_a_player",
            "game_over",
        }
    else:  # the junk happened to be a legal move: fine, but it must have been legal
        assert who in rules.to_move(state)


@games
def test_outsiders_and_waiting_players_are_refused(rules: GameRules) -> None:
    state = rules.setup(PLAYERS, 7)
    player = rules.to_move(state)[0]
    move = rules.legal_moves(state, player)[0]
    outsider = rules.apply(state, "mallory", move)
    assert isinstance(outsider, Invalid) and outsider.code == "not_a_player"
    for waiting in set(PLAYERS) - set(rules.to_move(state)):
        refused = rules.apply(state, waiting, move)
        assert isinstance(refused, Invalid) and refused.code == "not_your_turn"
