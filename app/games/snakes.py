"""Snakes and Ladders: race from off the board (0) to square 100 on the classic board.

The only move is ``{"roll": True}``: the server rolls the die from the seed and the
roll count (``die(seed, n)``), so the client never chooses the number and every game
replays from its move list. Landing on a ladder's foot climbs it, on a snake's head
slides down it. Finishing needs the exact number: a roll that would pass 100 leaves
the token where it is. A 6 earns another roll (even when it overshoots), but the
third 6 in a row is moved and then the turn passes. First to reach exactly 100 wins.
Should a game ever reach ``MAX_ROLLS`` rolls, the player nearest 100 wins (a tie is a
draw); real games end far sooner, so this only guarantees termination.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from app.games.base import (
    BAD_MOVE,
    Invalid,
    Move,
    State,
    TwoPlayerTurns,
    clone,
    turn_check,
)

__all__ = ["HISTORY", "LADDERS", "MAX_ROLLS", "MAX_SIXES", "SNAKES", "SnakesAndLadders", "die"]

FINISH = 100
# The classic Milton Bradley board: foot → top and head → tail.
LADDERS = {1: 38, 4: 14, 9: 31, 21: 42, 28: 84, 36: 44, 51: 67, 71: 91, 80: 100}
SNAKES = {16: 6, 47: 26, 49: 11, 56: 53, 62: 19, 64: 60, 87: 24, 93: 73, 95: 75, 98: 78}
MAX_SIXES = 3  # the third 6 in a row does not earn another roll
HISTORY = 10  # rolls kept in the state for the UI
MAX_ROLLS = 1_000  # then the player nearest 100 wins


def die(seed: int, number: int) -> int:
    """The ``number``-th roll (from 0) of the game seeded with ``seed``."""
    return random.Random(f"{seed}:{number}").randint(1, 6)


class SnakesAndLadders(TwoPlayerTurns):
    kind = "snakes"
    title = "Snakes and Ladders"
    summary = "Roll and race to 100: ladders climb, snakes slide, a 6 rolls again."

    def setup(self, players: Sequence[str], seed: int) -> State:
        return {
            "players": list(players),
            "seed": seed,
            "positions": [0] * len(players),
            "turn": 0,
            "rolls": 0,  # rolls so far: numbers the next roll
            "sixes": 0,  # 6s in a row by the player to move
            "history": [],
            "result": None,
        }

    def apply(self, state: State, player: str, move: Move) -> State | Invalid:
        refused = turn_check(state, player)
        if refused is not None:
            return refused
        if not isinstance(move, dict) or move.keys() != {"roll"} or move["roll"] is not True:
            return Invalid(BAD_MOVE, 'the only move is {"roll": true}')
        new = clone(state)
        seat = new["turn"]
        roll = die(new["seed"], new["rolls"])
        new["rolls"] += 1
        start = new["positions"][seat]
        square = start + roll
        via = None
        if square > FINISH:
            square = start  # exact roll needed to finish
        elif square in LADDERS:
            square, via = LADDERS[square], "ladder"
        elif square in SNAKES:
            square, via = SNAKES[square], "snake"
        new["positions"][seat] = square
        entry = {"player": player, "roll": roll, "from": start, "to": square, "via": via}
        new["history"] = [*new["history"], entry][-HISTORY:]
        if square == FINISH:
            new["result"] = {"status": "win", "winner": player, "reason": "reached 100"}
        elif new["rolls"] >= MAX_ROLLS:
            new["result"] = self._nearest(new)
        elif roll == 6 and new["sixes"] + 1 < MAX_SIXES:
            new["sixes"] += 1  # another roll
        else:
            new["sixes"] = 0
            new["turn"] = (seat + 1) % len(new["players"])
        return new

    def _nearest(self, state: State) -> dict[str, object]:
        best = max(state["positions"])
        leaders = [
            p for p, at in zip(state["players"], state["positions"], strict=True) if at == best
        ]
        if len(leaders) > 1:
            return {"status": "draw", "winner": None, "reason": "roll limit, level"}
        return {"status": "win", "winner": leaders[0], "reason": "roll limit, nearest 100"}

    def legal_moves(self, state: State, player: str) -> list[Move]:
        if player not in self.to_move(state):
            return []
        return [{"roll": True}]
