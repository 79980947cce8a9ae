"""Games API: the catalogue, a player's view, moves and resignation over HTTP.

Moves come in here and go out on each player's ``/ws/<game_id>?subscribe-user``
socket (published by :class:`app.services.play.Play`); the HTTP answer is the
ack, sent only after the move is stored.
"""

from __future__ import annotations

from typing import Any

from app.errors import Invalid
from app.games import registry
from app.handlers.session import ApiHandler
from app.services.play import Ack, Stale

__all__ = ["CatalogueApi", "ChatApi", "DrawApi", "GameApi", "MoveApi", "ResignApi"]


def ack_json(ack: Ack) -> dict[str, Any]:
    return {"seq": ack.seq, "version": ack.version, "result": ack.result}


class CatalogueApi(ApiHandler):
    """``GET /api/games/catalogue``: every game kind; no sign-in needed."""

    def get(self) -> None:
        self.write_json(registry.catalogue())


class GameApi(ApiHandler):
    """``GET /api/games/<id>``: a player's own view; anyone else signed in gets the public
    (spectator) view, as on the spectator socket."""

    async def get(self, game_id: str) -> None:
        me = self.viewer().username
        self.write_json(await self.web.play.view(game_id, me))


class MoveApi(ApiHandler):
    """``POST /api/games/<id>/moves {move, seq}`` → the ack; stale → 409 + view."""

    async def post(self, game_id: str) -> None:
        me = self.viewer().username
        body = self.json_body()
        seq = body.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise Invalid("seq", "seq must be the last seq of the game you saw")
        try:
            ack = await self.web.play.move(game_id, me, body.get("move"), expected_seq=seq)
        except Stale as stale:
            error = {"error": stale.code, "message": str(stale), "current": stale.current}
            self.write_json(error, status=409)
            return
        self.write_json(ack_json(ack))


class ResignApi(ApiHandler):
    """``POST /api/games/<id>/resign`` → the ack of the final event."""

    async def post(self, game_id: str) -> None:
        ack = await self.web.play.resign(game_id, self.viewer().username)
        self.write_json(ack_json(ack))


class DrawApi(ApiHandler):
    """``POST /api/games/<id>/draw {action: offer|accept|decline}`` → the ack."""

    async def post(self, game_id: str) -> None:
        me = self.viewer().username
        action = self.json_body().get("action")
        play = self.web.play
        if action == "offer":
            ack = await play.offer_draw(game_id, me)
        elif action in ("accept", "decline"):
            ack = await play.answer_draw(game_id, me, accept=action == "accept")
        else:
            raise Invalid("action", "action must be offer, accept or decline")
        self.write_json(ack_json(ack))


class ChatApi(ApiHandler):
    """``POST /api/games/<id>/chat {text}`` → ``{"n"}``; players only."""

    async def post(self, game_id: str) -> None:
        line = await self.web.play.chat(
            game_id, self.viewer().username, self.json_body().get("text")
        )
        self.write_json({"n": line.n})
