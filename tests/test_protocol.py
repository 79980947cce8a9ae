"""Client game messages: every input is a command or a MessageError with a documented code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

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

GAME = "0123456789abcdef"
CODES = {"bad_json", "bad_message", "unknown_type", "wrong_game"}


@pytest.mark.parametrize(
    ("sent", "parsed"),
    [
        ({"type": "move", "seq": 3, "move": {"cell": 1}, "id": 7}, MoveCommand(3, {"cell": 1}, 7)),
        ({"type": "resume"}, Resume(0, 0)),
        ({"type": "resume", "since": 4, "chat_since": 2, "id": "r"}, Resume(4, 2, "r")),
        ({"type": "chat", "text": "hi", "game": GAME}, ChatCommand("hi")),
        ({"type": "resign"}, Resign()),
        ({"type": "offer_draw"}, OfferDraw()),
        ({"type": "accept_draw"}, AnswerDraw(True)),
        ({"type": "decline_draw"}, AnswerDraw(False)),
    ],
)
def test_valid_messages(sent: dict[str, Any], parsed: object) -> None:
    assert parse_game_message(json.dumps(sent), GAME) == parsed


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{", "bad_json"),
        ("[]", "bad_message"),
        ('"move"', "bad_message"),
        ('{"type": "fly"}', "unknown_type"),
        ('{"type": ["move"]}', "unknown_type"),
        ('{"type": "move", "seq": -1, "move": {}}', "bad_message"),
        ('{"type": "move", "seq": true, "move": {}}', "bad_message"),
        ('{"type": "move", "move": {}}', "bad_message"),
        ('{"type": "resume", "since": 1.5}', "bad_message"),
        ('{"type": "move", "seq": 0, "id": [1]}', "bad_message"),
        ('{"type": "move", "seq": 0, "id": "' + "x" * 65 + '"}', "bad_message"),
        ('{"type": "move", "seq": 0, "game": "other"}', "wrong_game"),
    ],
)
def test_invalid_messages(text: str, code: str) -> None:
    with pytest.raises(MessageError) as refused:
        parse_game_message(text, GAME)
    assert refused.value.code == code


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["move", "resume", "chat", "resign", "x"]) | json_values,
        "seq": json_values,
        "since": json_values,
        "id": json_values,
        "game": st.just(GAME) | json_values,
        "move": json_values,
    },
)


@given(messages)
def test_any_json_object_is_a_command_or_a_documented_error(sent: dict[str, Any]) -> None:
    try:
        parse_game_message(json.dumps(sent), GAME)
    except MessageError as error:
        assert error.code in CODES


@given(st.text())
def test_any_text_is_a_command_or_a_documented_error(text: str) -> None:
    try:
        parse_game_message(text, GAME)
    except MessageError as error:
        assert error.code in CODES
