"""Client → server messages on a game socket: parsed and checked, nothing else.

Each text frame is one JSON object with a ``type`` (docs/protocol.md, "The game
socket"). :func:`parse_game_message` turns it into one of the command classes
below or raises :class:`MessageError` with a documented ``code``; it never
raises anything else, whatever the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from app.errors import BadRequest

__all__ = [
    "AnswerDraw",
    "ChatCommand",
    "Command",
    "MessageError",
    "MoveCommand",
    "OfferDraw",
    "Resign",
    "Resume",
    "parse_game_message",
]

MsgId = str | int | None
_MAX_ID_CHARS = 64
_MAX_SEQ = 2**53  # JSON-safe integers only


class MessageError(BadRequest):
    """A refused client message; ``msg_id`` is echoed in the error answer."""

    def __init__(self, message: str, *, code: str, msg_id: MsgId = None) -> None:
        super().__init__(message, code=code)
        self.msg_id = msg_id


@dataclass(frozen=True, slots=True)
class Resume:
    since: int
    chat_since: int
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class MoveCommand:
    seq: int
    move: Any
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class Resign:
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class OfferDraw:
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class AnswerDraw:
    accept: bool
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class ChatCommand:
    text: Any
    id: MsgId = None


Command = Resume | MoveCommand | Resign | OfferDraw | AnswerDraw | ChatCommand


def _msg_id(data: dict[str, Any]) -> MsgId:
    value = data.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MessageError("id must be a string or an integer", code="bad_message")
    if isinstance(value, str) and len(value) > _MAX_ID_CHARS:
        raise MessageError(f"id is at most {_MAX_ID_CHARS} characters", code="bad_message")
    if isinstance(value, int) and not -_MAX_SEQ <= value <= _MAX_SEQ:
        raise MessageError("id is out of range", code="bad_message")
    return value


def _count(data: dict[str, Any], name: str, msg_id: MsgId, *, default: int | None = None) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_SEQ:
        raise MessageError(
            f"{name} must be a non-negative integer", code="bad_message", msg_id=msg_id
        )
    return value


def parse_game_message(text: str, game_id: str) -> Command:
    """The command in ``text`` for the socket of ``game_id``.

    Raises:
        MessageError: ``bad_json``, ``bad_message``, ``unknown_type`` or ``wrong_game``.
    """
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise MessageError("a message is one JSON object", code="bad_json") from None
    if not isinstance(data, dict):
        raise MessageError("a message is one JSON object", code="bad_message")
    msg_id = _msg_id(data)
    kind = data.get("type")
    if "game" in data and data["game"] != game_id:
        raise MessageError("this socket is for another game", code="wrong_game", msg_id=msg_id)
    if kind == "move":
        return MoveCommand(_count(data, "seq", msg_id), data.get("move"), msg_id)
    if kind == "resume":
        since = _count(data, "since", msg_id, default=0)
        return Resume(since, _count(data, "chat_since", msg_id, default=0), msg_id)
    if kind == "chat":
        return ChatCommand(data.get("text"), msg_id)
    if kind == "resign":
        return Resign(msg_id)
    if kind == "offer_draw":
        return OfferDraw(msg_id)
    if kind in ("accept_draw", "decline_draw"):
        return AnswerDraw(kind == "accept_draw", msg_id)
    shown = kind[:40] if isinstance(kind, str) else type(kind).__name__
    raise MessageError(
        f"unknown message type {shown!r}; known: move, resume, chat, resign, "
        "offer_draw, accept_draw, decline_draw",
        code="unknown_type",
        msg_id=msg_id,
    )
