"""Fuzz the pure input parsers: ``parse_game_message`` and every game's ``apply``.

Extends tests/test_protocol.py (JSON objects with a few fields, arbitrary ``str``) and
tests/games/test_properties.py (junk moves on the *initial* state only) with: raw JSON
text that is not what ``json.dumps`` would write (huge numbers, deep nesting, lone
surrogates, duplicate keys, trailing garbage), every field of every message type given
every wrong type, and junk or near-miss moves on *arbitrary reachable* states (mid-game,
finished by the rules, ended from outside by a resignation) for every registered game.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.games.base import GameRules, Invalid, State
from app.games.registry import GAMES
from app.protocol import (
    AnswerDraw,
    ChatCommand,
    MessageError,
    MoveCommand,
    OfferDraw,
    Resign,
    Resume,
    parse_game_message,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
GAME = "fuzz-game_01"
PLAYERS = ["ann", "bob"]
OUTSIDER = "mallory"
MAX_SEQ = 2**53
COMMANDS = (Resume, MoveCommand, Resign, OfferDraw, AnswerDraw, ChatCommand)
TYPES = ["move", "resume", "chat", "resign", "offer_draw", "accept_draw", "decline_draw"]
MOVE_KEYS = ["cell", "column", "line", "row", "col", "roll", "number", "choice"]

fuzz = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def socket_error_codes() -> set[str]:
    """The game socket's error codes, as listed in docs/protocol.md ("Errors: ... Codes:")."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split('Errors: `{"type":"error"', 1)[1].split("**Server", 1)[0]
    return set(re.findall(r"`([a-z][a-z_]*)`", section))


SOCKET_CODES = socket_error_codes()
PARSER_CODES = {"bad_json", "bad_message", "unknown_type", "wrong_game"}
RULES_CODES = {"bad_move", "illegal_move", "not_your_turn", "not_a_player", "game_over"}


def test_the_codes_used_here_are_the_documented_ones() -> None:
    assert PARSER_CODES <= SOCKET_CODES, PARSER_CODES - SOCKET_CODES
    assert RULES_CODES <= SOCKET_CODES, RULES_CODES - SOCKET_CODES


# --- JSON values and raw JSON text -------------------------------------------------------

huge_ints = st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 2**63, 2**64, -(2**63) - 1, 10**30])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | huge_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80)
    | st.text(alphabet=st.characters(min_codepoint=0x80), max_size=20)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)


def raw_number() -> st.SearchStrategy[str]:
    """Number literals as text, including ones no ``json.dumps`` produces."""
    return st.one_of(
        st.integers().map(str),
        st.sampled_from(
            ["1e400", "-1e400", "1" * 400, "-" + "9" * 40, "0.0000001", "1E2", "-0", "01", "NaN",
             "Infinity", "-Infinity", "1.", ".5", "+1", "0x10"]
        ),
    )  # fmt: skip


def nested(depth: int) -> str:
    return '{"type": "move", "seq": 0, "move": ' + "[" * depth + "]" * depth + "}"


@st.composite
def raw_messages(draw: st.DrawFn) -> str:
    """A message as raw text: valid-looking shapes with hostile literals spliced in."""
    kind = draw(st.sampled_from([*TYPES, "x", ""]))
    field = draw(st.sampled_from(["seq", "since", "chat_since", "id", "game", "type", "move"]))
    literal = draw(
        raw_number()
        | st.sampled_from(
            ['"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', "[]", "{}", "true", "null"]
        )
        | st.text(max_size=10).map(lambda s: json.dumps(s, ensure_ascii=False))
    )
    text = f'{{"type": "{kind}", "{field}": {literal}, "seq": 1}}'  # duplicate keys sometimes
    tail = draw(st.sampled_from(["", " ", "x", "}", ",", "\x00", "\ud800", "{}"]))
    return text + tail


def check_parse(text: str) -> None:
    try:
        command = parse_game_message(text, GAME)
    except MessageError as error:
        assert error.code in PARSER_CODES, error.code
        assert isinstance(str(error), str) and str(error)
        assert error.msg_id is None or isinstance(error.msg_id, (str, int))
        return
    assert isinstance(command, COMMANDS), command
    msg_id = command.id
    assert msg_id is None or (isinstance(msg_id, (str, int)) and not isinstance(msg_id, bool))
    if isinstance(msg_id, str):
        assert len(msg_id) <= 64
    if isinstance(msg_id, int):
        assert -MAX_SEQ <= msg_id <= MAX_SEQ
    if isinstance(command, MoveCommand):
        assert type(command.seq) is int and 0 <= command.seq <= MAX_SEQ
    if isinstance(command, Resume):
        for count in (command.since, command.chat_since):
            assert type(count) is int and 0 <= count <= MAX_SEQ


@fuzz
@given(raw_messages())
def test_raw_json_text_with_hostile_literals(text: str) -> None:
    check_parse(text)


@fuzz
@given(json_values)
def test_any_json_value_at_top_level(value: Any) -> None:
    check_parse(json.dumps(value, ensure_ascii=False))


@fuzz
@given(
    kind=st.sampled_from(TYPES),
    fields=st.dictionaries(
        st.sampled_from(["seq", "since", "chat_since", "id", "game", "move", "text", "accept"]),
        json_values,
        max_size=6,
    ),
    extra=st.dictionaries(st.text(max_size=12), json_values, max_size=3),
)
def test_every_field_of_every_type_with_any_value(
    kind: str, fields: dict[str, Any], extra: dict[str, Any]
) -> None:
    message = {**extra, **fields, "type": kind}
    check_parse(json.dumps(message, ensure_ascii=False))


@fuzz
@given(st.binary(max_size=200))
def test_bytes_decoded_any_way(raw: bytes) -> None:
    # A socket hands over text; whatever decoding produced it (surrogates, NULs, BOMs).
    for text in (raw.decode("latin-1"), raw.decode("utf-8", "surrogateescape")):
        check_parse(text)


@pytest.mark.parametrize("depth", [10, 200, 1000, 5000, 100_000])
def test_deep_nesting_is_a_documented_error_or_a_command(depth: int) -> None:
    check_parse(nested(depth))


def test_huge_text_message() -> None:
    check_parse('{"type": "chat", "text": "' + "x" * 2_000_000 + '"}')
    check_parse('{"type": "move", "seq": ' + "9" * 100_000 + "}")


# --- every game's apply on arbitrary reachable states --------------------------------------

games = pytest.mark.parametrize("rules", list(GAMES.values()), ids=list(GAMES))


@st.composite
def reachable(draw: st.DrawFn, rules: GameRules) -> State:
    """A state reached by random legal moves, possibly ended from outside (resign/timeout)."""
    state = rules.setup(PLAYERS, draw(st.integers(0, 2**31)))
    for _ in range(draw(st.integers(0, 120))):
        if rules.outcome(state).finished:
            break
        player = draw(st.sampled_from(sorted(rules.to_move(state))))
        move = draw(st.sampled_from(rules.legal_moves(state, player)))
        after = rules.apply(state, player, move)
        assert not isinstance(after, Invalid), (move, after)
        state = after
    if draw(st.booleans()) and not rules.outcome(state).finished:
        ended = dict(state)  # what Play does on resignation, timeout or agreed draw
        winner = draw(st.sampled_from([*PLAYERS, None]))
        status = "draw" if winner is None else "win"
        ended["result"] = {"status": status, "winner": winner, "reason": "resigned"}
        state = ended
    return state


@st.composite
def near_miss_moves(draw: st.DrawFn) -> Any:
    """Objects with the real move keys (any game's) holding any value, or plain junk."""
    keys = draw(st.lists(st.sampled_from(MOVE_KEYS), max_size=4, unique=True))
    move: dict[str, Any] = {key: draw(json_values) for key in keys}
    pick = draw(st.integers(0, 3))
    if pick == 0:
        return draw(json_values)
    if pick == 1:  # plausible values just out of range or of a neighbouring type
        for key in keys:
            move[key] = draw(
                st.sampled_from([-1, 0, 7, 9, 25, 26, 100, True, False, 1.0, "1", "h", "v", "rock"])
                | huge_ints
            )
    return move


@games
@fuzz
@given(data=st.data(), who=st.sampled_from([*PLAYERS, OUTSIDER, ""]))
def test_apply_on_any_reachable_state_never_raises(
    rules: GameRules, data: st.DataObject, who: str
) -> None:
    state = data.draw(reachable(rules))
    move = data.draw(near_miss_moves())
    before = orjson.dumps(state, option=orjson.OPT_SORT_KEYS)
    result = rules.apply(state, who, move)  # an exception here is a rules bug
    assert orjson.dumps(state, option=orjson.OPT_SORT_KEYS) == before, "apply mutated its input"
    if isinstance(result, Invalid):
        assert result.code in RULES_CODES, result
        assert isinstance(result.message, str)
        if who == OUTSIDER or who == "":
            assert result.code == "not_a_player"
        elif rules.outcome(state).finished:
            assert result.code == "game_over"
        return
    # accepted: only a player expected to move, and the new state is storable and viewable
    assert who in rules.to_move(state), (who, move)
    assert isinstance(result, dict)
    orjson.dumps(result)
    for viewer in (*PLAYERS, None):
        orjson.dumps(rules.view(result, viewer))
    rules.outcome(result)
    for player in PLAYERS:
        assert isinstance(rules.legal_moves(result, player), list)


@games
@fuzz
@given(data=st.data())
def test_legal_moves_with_one_field_corrupted_are_refused_cleanly(
    rules: GameRules, data: st.DataObject
) -> None:
    state = data.draw(reachable(rules))
    if rules.outcome(state).finished:
        return
    player = data.draw(st.sampled_from(sorted(rules.to_move(state))))
    move = dict(data.draw(st.sampled_from(rules.legal_moves(state, player))))
    key = data.draw(st.sampled_from(sorted(move)))
    move[key] = data.draw(json_values.filter(lambda value: value != move[key]))
    result = rules.apply(state, player, move)
    if isinstance(result, Invalid):
        assert result.code in {"bad_move", "illegal_move"}, result
    else:  # the corruption may land on another legal move (e.g. another cell)
        assert move in rules.legal_moves(state, player), move
