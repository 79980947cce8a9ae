"""No view leaks another player's private data, checked at every step of random games.

Two independent checks per view: the secret is searched for directly (the other board
as a list, anywhere in the view; the pending-choice field must be absent), and the view
must be unchanged when the secret is swapped for a different value, which no
coincidence in the public data can fake.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.games.base import GameRules, Invalid, State, clone
from app.games.bingo import Bingo
from app.games.rps import CHOICES, RockPaperScissors

PLAYERS = ["ann", "bob"]
VIEWERS: list[str | None] = [*PLAYERS, None, "mallory"]
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def lists_in(value: Any) -> Iterator[list[Any]]:
    """Every list anywhere inside ``value``, and the flattening of every nested one."""
    if isinstance(value, dict):
        for item in value.values():
            yield from lists_in(item)
    elif isinstance(value, list):
        yield value
        if value and all(isinstance(item, list) for item in value):
            yield [x for item in value for x in item]
        for item in value:
            yield from lists_in(item)


def seat_of(viewer: str | None) -> int | None:
    return PLAYERS.index(viewer) if viewer in PLAYERS else None


def check_bingo(rules: GameRules, state: State) -> None:
    finished = rules.outcome(state).finished
    for viewer in VIEWERS:
        seen = rules.view(state, viewer)
        text = json.dumps(seen, sort_keys=True)
        mine = seat_of(viewer)
        for seat, board in enumerate(state["boards"]):
            shown = any(found == board for found in lists_in(seen))
            if finished:
                assert shown, f"{viewer} must see board {seat} once the game is over"
            elif seat == mine:
                assert seen["board"] == board
            else:
                assert not shown, f"{viewer} sees board {seat}"
                assert json.dumps(board) not in text
        if finished:
            continue
        assert "seed" not in seen, "the seed would reveal every board"
        # swap every board but the viewer's (and the seed): the view must not change
        swapped = clone(state)
        swapped["seed"] = state["seed"] + 1
        for seat in range(len(PLAYERS)):
            if seat != mine:
                swapped["boards"][seat] = swapped["boards"][seat][::-1]
        assert rules.view(swapped, viewer) == seen


def check_rps(rules: GameRules, state: State) -> None:
    for viewer in VIEWERS:
        seen = rules.view(state, viewer)
        mine = seat_of(viewer)
        assert "pending" not in seen
        assert seen["chosen"] == [choice is not None for choice in state["pending"]]
        if mine is None:
            assert "your_choice" not in seen
        else:
            assert seen["your_choice"] == state["pending"][mine]
        for seat, pending in enumerate(state["pending"]):
            if seat == mine or pending is None:
                continue
            for other in CHOICES:  # any other pending choice: the same view
                swapped = clone(state)
                swapped["pending"][seat] = other
                assert rules.view(swapped, viewer) == seen


def play_checking(
    rules: GameRules, check: Callable[[GameRules, State], None], seed: int, data: st.DataObject
) -> None:
    state = rules.setup(PLAYERS, seed)
    check(rules, state)
    while not rules.outcome(state).finished:
        player = data.draw(st.sampled_from(sorted(rules.to_move(state))))
        move = data.draw(st.sampled_from(rules.legal_moves(state, player)))
        after = rules.apply(state, player, move)
        assert not isinstance(after, Invalid), after
        state = after
        check(rules, state)


@fast
@given(seed=st.integers(0, 2**31), data=st.data())
def test_bingo_views_never_show_the_other_board_while_playing(
    seed: int, data: st.DataObject
) -> None:
    play_checking(Bingo(), check_bingo, seed, data)


@fast
@given(seed=st.integers(0, 2**31), data=st.data())
def test_rps_views_never_show_the_other_pending_choice(seed: int, data: st.DataObject) -> None:
    play_checking(RockPaperScissors(), check_rps, seed, data)
