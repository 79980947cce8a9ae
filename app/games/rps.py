"""Rock-paper-scissors, best of five: the first to win three rounds wins the game.

Both players choose secretly each round, in either order; ``to_move`` names every
player who has not chosen yet. Choosing again in the same round is refused as
``not_your_turn`` (the player is no longer among those expected to move). When both
have chosen the round resolves and both choices join the public ``rounds`` history.
Drawn rounds do not count. To guarantee an end, the game stops after ``MAX_ROUNDS``
rounds: the player with more round wins wins, or it is a draw on level scores.

A view never contains a pending choice except the viewer's own (``your_choice``);
everyone sees only whether each player has chosen (``chosen``).
"""

from __future__ import annotations

from collections.abc import Sequence

from app.games.base import (
    BAD_MOVE,
    GAME_OVER,
    NOT_A_PLAYER,
    NOT_YOUR_TURN,
    Invalid,
    Move,
    State,
    TwoPlayerTurns,
    clone,
)

__all__ = ["RockPaperScissors"]

BEATS = {"rock": "scissors", "paper": "rock", "scissors": "paper"}
CHOICES = tuple(BEATS)
WINS_NEEDED = 3
MAX_ROUNDS = 15


class RockPaperScissors(TwoPlayerTurns):
    kind = "rps"
    title = "Rock-paper-scissors"
    summary = "Secret simultaneous choices, best of five: first to three round wins."
    secret_moves = True

    def setup(self, players: Sequence[str], seed: int) -> State:
        return {
            "players": list(players),
            "seed": seed,
            "pending": [None] * len(players),
            "rounds": [],
            "score": [0] * len(players),
            "result": None,
        }

    def apply(self, state: State, player: str, move: Move) -> State | Invalid:
        if player not in state["players"]:
            return Invalid(NOT_A_PLAYER, "you are not playing this game")
        if state.get("result") is not None:
            return Invalid(GAME_OVER, "the game is over")
        seat = state["players"].index(player)
        if state["pending"][seat] is not None:
            return Invalid(NOT_YOUR_TURN, "you have already chosen this round")
        if not isinstance(move, dict):
            return Invalid(BAD_MOVE, "a move is a JSON object")
        choice = move.get("choice")
        if not isinstance(choice, str) or choice not in BEATS:
            return Invalid(BAD_MOVE, "'choice' must be rock, paper or scissors")
        new = clone(state)
        new["pending"][seat] = choice
        if all(pending is not None for pending in new["pending"]):
            resolve(new)
        return new

    def to_move(self, state: State) -> tuple[str, ...]:
        if state.get("result"):
            return ()
        pairs = zip(state["players"], state["pending"], strict=True)
        return tuple(player for player, pending in pairs if pending is None)

    def view(self, state: State, player: str | None) -> State:
        seen = clone(state)
        pending = seen.pop("pending")
        seen["chosen"] = [choice is not None for choice in pending]
        if player in state["players"]:
            seen["your_choice"] = pending[state["players"].index(player)]
        return seen

    def legal_moves(self, state: State, player: str) -> list[Move]:
        if player not in self.to_move(state):
            return []
        return [{"choice": choice} for choice in CHOICES]


def resolve(state: State) -> None:
    """Settle the round in ``state`` (a fresh copy, modified in place)."""
    first, second = state["pending"]
    if first == second:
        winner = None
    else:
        winner = 0 if BEATS[first] == second else 1
        state["score"][winner] += 1
    players = state["players"]
    state["rounds"].append(
        {"choices": [first, second], "winner": None if winner is None else players[winner]}
    )
    state["pending"] = [None, None]
    score = state["score"]
    if winner is not None and score[winner] >= WINS_NEEDED:
        state["result"] = {"status": "win", "winner": players[winner], "reason": "three rounds won"}
    elif len(state["rounds"]) >= MAX_ROUNDS:
        if score[0] == score[1]:
            state["result"] = {"status": "draw", "winner": None, "reason": "round limit, level"}
        else:
            leader = players[0 if score[0] > score[1] else 1]
            state["result"] = {"status": "win", "winner": leader, "reason": "round limit, ahead"}
