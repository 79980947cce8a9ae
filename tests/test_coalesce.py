"""Which lobby messages replace an older one kept for a client that fell behind."""

from __future__ import annotations

import orjson
import pytest

from app.coalesce import coalescing_key


@pytest.mark.parametrize(
    ("message", "key"),
    [
        ({"type": "presence", "user": "ann", "status": "online"}, ("presence", "ann")),
        ({"type": "game_live", "game": {"game_id": "g1", "kind": "rps"}}, ("game_live", "g1")),
        ({"type": "game_over", "game_id": "g1"}, ("game_live", "g1")),  # ends the same entry
        ({"type": "watchers", "game_id": "g1", "count": 3}, ("watchers", "g1")),
        ({"type": "challenge", "id": "c1"}, None),  # offers and answers are all kept
        ({"type": "notice", "text": "hi"}, None),
        ({"type": "presence", "user": 7}, None),
        ({"type": "game_live", "game": "g1"}, None),
    ],
)
def test_keys(message: dict[str, object], key: tuple[str, str] | None) -> None:
    assert coalescing_key(orjson.dumps(message)) == key


@pytest.mark.parametrize("payload", [b"plain ws4redis text", b"", b'{"type":"presence",', b"[1]"])
def test_anything_else_has_no_key(payload: bytes) -> None:
    assert coalescing_key(payload) is None
