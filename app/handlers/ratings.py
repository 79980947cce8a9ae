"""Ratings: the leaderboard and player profiles, as JSON APIs and server-rendered pages.

Any signed-in user may read them; signed out, the API answers 401 and the pages
send to the login page.
"""

from __future__ import annotations

from app.games import registry
from app.handlers.context import WebContext
from app.handlers.records import OUTCOME_LABELS, duration
from app.handlers.session import ApiHandler, PageHandler
from app.services.ratings import Board, Ratings, parse_board

__all__ = ["LeaderboardApi", "LeaderboardPage", "ProfileApi", "ProfilePage"]


class _RatingsMixin:
    """``ratings`` comes in as a route kwarg; parses the leaderboard parameters."""

    ratings: Ratings

    def board(self) -> Board:
        arg = self.get_query_argument  # type: ignore[attr-defined]
        return parse_board(kind=arg("kind", None), limit=arg("limit", None))


class LeaderboardApi(_RatingsMixin, ApiHandler):
    """``GET /api/leaderboard?kind=&limit=`` → ``{kind, players: [{rank, username, ...}]}``."""

    def initialize(self, web: WebContext, ratings: Ratings) -> None:  # type: ignore[override]
        super().initialize(web)
        self.ratings = ratings

    async def get(self) -> None:
        self.viewer()
        self.write_json(await self.ratings.leaderboard(self.board()))


class ProfileApi(_RatingsMixin, ApiHandler):
    """``GET /api/users/<name>/profile`` → ``{username, ratings, totals, recent}``."""

    def initialize(self, web: WebContext, ratings: Ratings) -> None:  # type: ignore[override]
        super().initialize(web)
        self.ratings = ratings

    async def get(self, name: str) -> None:
        self.viewer()
        self.write_json(await self.ratings.profile(name))


class LeaderboardPage(_RatingsMixin, PageHandler):
    """``/leaderboard?kind=``: the ranking, overall or for one game kind."""

    def initialize(self, web: WebContext, ratings: Ratings) -> None:  # type: ignore[override]
        super().initialize(web)
        self.ratings = ratings

    async def get(self) -> None:
        me = self.viewer().username  # signed out: redirected to /login?next=...
        board = await self.ratings.leaderboard(self.board())
        self.render(
            "leaderboard.html",
            me=me,
            kind=board["kind"],
            players=board["players"],
            kinds=[(k["kind"], k["title"]) for k in registry.catalogue()],
        )


class ProfilePage(_RatingsMixin, PageHandler):
    """``/users/<name>``: ratings per kind, totals and the latest games."""

    def initialize(self, web: WebContext, ratings: Ratings) -> None:  # type: ignore[override]
        super().initialize(web)
        self.ratings = ratings

    async def get(self, name: str) -> None:
        me = self.viewer().username
        profile = await self.ratings.profile(name)
        self.render(
            "profile.html",
            me=me,
            profile=profile,
            outcome_labels=OUTCOME_LABELS,
            duration=duration,
        )
