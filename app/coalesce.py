"""Which lobby messages a newer one makes obsolete (for clients that fell behind).

A lobby socket that cannot take a frame keeps it aside until the client catches up;
a newer message with the same key replaces the kept one there (the client only
ever needed the latest): a user's ``presence``, a game's entry in the live list
(``game_live`` then ``game_over``) and a game's ``watchers`` count. Other messages
have no key and are kept as they are, in order.
"""

from __future__ import annotations

import orjson

__all__ = ["coalescing_key"]

_OBJECT = b'{"type":"'


def coalescing_key(payload: bytes) -> tuple[str, str] | None:
    """The key under which a newer ``payload`` replaces an older one, or None."""
    if not payload.startswith(_OBJECT):
        return None
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    kind = message.get("type")
    subject: object = None
    if kind == "presence":
        subject = message.get("user")
    elif kind == "game_live":
        game = message.get("game")
        subject = game.get("game_id") if isinstance(game, dict) else None
    elif kind == "game_over":
        kind, subject = "game_live", message.get("game_id")
    elif kind == "watchers":
        subject = message.get("game_id")
    return (kind, subject) if isinstance(subject, str) else None
