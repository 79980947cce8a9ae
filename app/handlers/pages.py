"""Server-rendered pages that are not about accounts."""

from __future__ import annotations

from typing import Any

import orjson

from app.errors import NotFound
from app.games import registry, snakes
from app.games.base import GameRules
from app.handlers.session import PageHandler
from app.storage.games import GameRecord, GameRepo

__all__ = ["GamePage", "IndexHandler", "NotFoundHandler", "board_page_args", "game_and_rules"]

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


async def game_and_rules(games: GameRepo, game_id: str) -> tuple[GameRecord, GameRules]:
    """The game and its rules, or NotFound (no such game, or a kind no longer served)."""
    game = await games.get(game_id)
    rules = registry.get(game.kind) if game is not None else None
    if game is None or rules is None:
        raise NotFound("There is no such game.")
    return game, rules


def board_page_args(game: GameRecord, rules: GameRules) -> dict[str, Any]:
    """What the game and replay templates need to draw the board."""
    return {
        "game_id": game.id,
        "kind": game.kind,
        "game_title": rules.title,
        "players": list(game.players),
        "players_json": orjson.dumps(list(game.players)).decode(),
        "board_json": orjson.dumps(_BOARD_DATA.get(game.kind, {})).decode(),
    }


class GamePage(PageHandler):
    """``/game/<id>``: the board of a game; read-only for a signed-in non-player (watching).

    The page reads everything it starts from in ``data-*`` attributes (the CSP
    forbids inline script), then follows the game on its socket.
    """

    async def get(self, game_id: str) -> None:
        me = self.viewer().username  # signed out: redirected to /login?next=...
        game, rules = await game_and_rules(self.web.games, game_id)
        self.render(
            "game.html", **board_page_args(game, rules), me=me, spectator=me not in game.players
        )


class NotFoundHandler(PageHandler):
    """Every unknown path: a 404 page, not a stack trace."""

    async def prepare(self) -> None:
        await super().prepare()
        self.set_status(404)
        if self.request.path.startswith("/api/"):  # API clients get JSON, like every API error
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(b'{"error":"not_found","message":"no such API endpoint"}')
            return
        self.render("error.html", status_code=404, message="This page does not exist.")
