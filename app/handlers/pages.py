"""Server-rendered pages that are not about accounts."""

from __future__ import annotations

import orjson

from app.errors import Forbidden, NotFound
from app.games import registry, snakes
from app.games.base import NOT_A_PLAYER
from app.handlers.session import PageHandler

__all__ = ["GamePage", "IndexHandler", "NotFoundHandler"]

# What a board needs from the rules but no view carries: the fixed board layout.
_BOARD_DATA: dict[str, dict[str, object]] = {
    "snakes": {
        "ladders": {str(k): v for k, v in snakes.LADDERS.items()},
        "snakes": {str(k): v for k, v in snakes.SNAKES.items()},
    },
}


class IndexHandler(PageHandler):
    """``/``: live notices, and the way in for visitors."""

    def get(self) -> None:
        self.render("index.html")


class GamePage(PageHandler):
    """``/game/<id>``: the board of a game the signed-in user plays (spectators later).

    The page reads everything it starts from in ``data-*`` attributes (the CSP
    forbids inline script), then follows the game on its socket.
    """

    async def get(self, game_id: str) -> None:
        me = self.viewer().username  # signed out: redirected to /login?next=...
        game = await self.web.games.get(game_id)
        rules = registry.get(game.kind) if game is not None else None
        if game is None or rules is None:
            raise NotFound("There is no such game.")
        if me not in game.players:
            raise Forbidden("You are not playing this game.", code=NOT_A_PLAYER)
        self.render(
            "game.html",
            game_id=game.id,
            kind=game.kind,
            game_title=rules.title,
            players=list(game.players),
            players_json=orjson.dumps(list(game.players)).decode(),
            board_json=orjson.dumps(_BOARD_DATA.get(game.kind, {})).decode(),
            me=me,
        )


class NotFoundHandler(PageHandler):
    """Every unknown path: a 404 page, not a stack trace."""

    async def prepare(self) -> None:
        await super().prepare()
        self.set_status(404)
        self.render("error.html", status_code=404, message="This page does not exist.")
