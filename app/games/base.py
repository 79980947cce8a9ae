"""The contract every game's rules follow, and the values they return.

A state is a JSON-serialisable dict owned by the rules; the service stores it,
versions it and never looks inside. ``apply`` returns a new state (the input is
never mutated) or an :class:`Invalid` naming why the move is refused: an
exception from rules code is a bug. Every game replays deterministically:
``setup(players, seed)`` then ``apply`` of the recorded moves gives the same state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

__all__ = [
    "BAD_MOVE",
    "GAME_OVER",
    "ILLEGAL",
    "NOT_A_PLAYER",
    "NOT_YOUR_TURN",
    "ONGOING",
    "GameRules",
    "Invalid",
    "Move",
    "Outcome",
    "State",
    "TwoPlayerTurns",
    "clone",
    "int_field",
    "turn_check",
]

State = dict[str, Any]
Move = dict[str, Any]

BAD_MOVE = "bad_move"  # malformed: wrong shape or types
ILLEGAL = "illegal_move"  # well-formed but against the rules
NOT_YOUR_TURN = "not_your_turn"
NOT_A_PLAYER = "not_a_player"
GAME_OVER = "game_over"


@dataclass(frozen=True, slots=True)
class Invalid:
    """A refused move: ``code`` is machine-readable, ``message`` for people."""

    code: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """``ongoing``, or finished with a ``winner`` (None for a draw) and a reason."""

    status: Literal["ongoing", "win", "draw"]
    winner: str | None = None
    reason: str = ""

    @property
    def finished(self) -> bool:
        return self.status != "ongoing"


ONGOING = Outcome("ongoing")


class GameRules(Protocol):
    """One game. Implementations are stateless singletons registered by ``kind``."""

    kind: str  # registry key, e.g. "tictactoe"
    title: str  # shown to people, e.g. "Tic-tac-toe"
    summary: str  # one sentence for the catalogue
    min_players: int
    max_players: int
    secret_moves: bool  # a move is hidden from the other players (RPS choices)

    def setup(self, players: Sequence[str], seed: int) -> State:
        """The initial state for ``players`` (in seat order)."""

    def apply(self, state: State, player: str, move: Move) -> State | Invalid:
        """The state after ``player`` plays ``move``, or why not."""

    def outcome(self, state: State) -> Outcome: ...

    def to_move(self, state: State) -> tuple[str, ...]:
        """Players expected to move now (two at once for simultaneous games)."""

    def view(self, state: State, player: str | None) -> State:
        """What ``player`` may see (``None``: a spectator); hides private information."""

    def legal_moves(self, state: State, player: str) -> list[Move]:
        """Every legal move of ``player`` now (empty when it is not their turn)."""


def clone(state: State) -> State:
    """A deep copy to modify, so ``apply`` never mutates its input.

    States are plain JSON, so a JSON round trip copies them: several times faster
    than ``copy.deepcopy`` (this runs on every move and every view).
    """
    copied: State = orjson.loads(orjson.dumps(state))
    return copied


def int_field(move: Move, name: str, low: int, high: int) -> int | Invalid:
    """``move[name]`` as an int in ``[low, high]``, or Invalid(bad_move)."""
    if not isinstance(move, dict):
        return Invalid(BAD_MOVE, "a move is a JSON object")
    value = move.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        return Invalid(BAD_MOVE, f"{name!r} must be an integer")
    if not low <= value <= high:
        return Invalid(BAD_MOVE, f"{name!r} must be {low}-{high}")
    return value


def turn_check(state: State, player: str) -> Invalid | None:
    """The common refusals: not a player, game over, not your turn."""
    if player not in state["players"]:
        return Invalid(NOT_A_PLAYER, "you are not playing this game")
    if state.get("result") is not None:
        return Invalid(GAME_OVER, "the game is over")
    if state["players"][state["turn"]] != player:
        return Invalid(NOT_YOUR_TURN, "it is not your turn")
    return None


class TwoPlayerTurns:
    """Defaults for two-player games that alternate ``state["turn"]`` and keep
    ``state["result"]`` as ``{"status", "winner", "reason"}`` once finished.

    The play service ends a game from outside the rules (resignation, timeout)
    by setting ``state["result"]``; every game treats such a state as finished.
    """

    min_players = 2
    max_players = 2
    secret_moves = False

    def outcome(self, state: State) -> Outcome:
        result = state.get("result")
        return ONGOING if result is None else Outcome(**result)

    def to_move(self, state: State) -> tuple[str, ...]:
        return () if state.get("result") else (state["players"][state["turn"]],)

    def view(self, state: State, player: str | None) -> State:
        return clone(state)  # nothing hidden
