"""Replays of finished games: the frames as JSON, and the page that steps through them."""

from __future__ import annotations

from app.errors import Conflict
from app.handlers.context import WebContext
from app.handlers.pages import board_page_args, game_and_rules
from app.handlers.session import ApiHandler, PageHandler
from app.services.replays import Replays
from app.storage.games import GameStatus

__all__ = ["ReplayApi", "ReplayPage"]


class ReplayApi(ApiHandler):
    """``GET /api/games/<id>/replay``: every position of a finished game (signed in).

    An active game → 409 ``game_active`` (a replay must not leak a live game's hidden
    information); unknown → 404.
    """

    def initialize(self, web: WebContext, replays: Replays) -> None:  # type: ignore[override]
        super().initialize(web)
        self.replays = replays

    async def get(self, game_id: str) -> None:
        self.viewer()
        self.write_json(await self.replays.frames(game_id))


class ReplayPage(PageHandler):
    """``/replay/<id>``: the board, the move list and the step controls.

    The page reads its game from ``data-*`` attributes (no inline script) and
    fetches the frames from :class:`ReplayApi`.
    """

    async def get(self, game_id: str) -> None:
        self.viewer()  # signed out: redirected to /login?next=...
        game, rules = await game_and_rules(self.web.games, game_id)
        if game.status is not GameStatus.FINISHED:
            raise Conflict("This game is still being played.", code="game_active")
        self.render("replay.html", **board_page_args(game, rules))
