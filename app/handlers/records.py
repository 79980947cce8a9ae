"""Players' histories of finished games: the JSON API and the server-rendered page.

Any signed-in user may read anyone's history; signed out, the API answers 401
and the page sends to the login page.
"""

from __future__ import annotations

from urllib.parse import urlencode

from app.games import registry
from app.handlers.context import WebContext
from app.handlers.session import ApiHandler, PageHandler
from app.services.records import OUTCOMES, Query, Records

__all__ = ["HistoryApi", "HistoryPage", "duration"]

OUTCOME_LABELS = {"win": "Won", "loss": "Lost", "draw": "Draw"}


def duration(seconds: int) -> str:
    """``75`` → ``"1m 15s"``; ``3725`` → ``"1h 02m"``."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


class _RecordsMixin:
    """Parses the shared query parameters; ``records`` comes in as a route kwarg."""

    records: Records

    def query(self) -> Query:
        arg = self.get_query_argument  # type: ignore[attr-defined]
        return Query.parse(
            kind=arg("kind", None),
            outcome=arg("outcome", None),
            before=arg("before", None),
            limit=arg("limit", None),
        )


class HistoryApi(_RecordsMixin, ApiHandler):
    """``GET /api/users/<name>/games?kind=&outcome=&before=&limit=`` → ``{games, next}``."""

    def initialize(self, web: WebContext, records: Records) -> None:  # type: ignore[override]
        super().initialize(web)
        self.records = records

    async def get(self, name: str) -> None:
        self.viewer()
        page = await self.records.history(name, self.query())
        self.write_json({"games": page.games, "next": page.next})


class HistoryPage(_RecordsMixin, PageHandler):
    """``/users/<name>/history``: a table of finished games, filters and "Older"."""

    def initialize(self, web: WebContext, records: Records) -> None:  # type: ignore[override]
        super().initialize(web)
        self.records = records

    async def get(self, name: str) -> None:
        me = self.viewer().username  # signed out: redirected to /login?next=...
        query = self.query()
        page = await self.records.history(name, query)
        older = None
        if page.next is not None:
            older = f"?{urlencode(query.params(before=page.next))}"
        self.render(
            "history.html",
            me=me,
            username=page.username,
            games=page.games,
            kinds=[(k["kind"], k["title"]) for k in registry.catalogue()],
            outcomes=OUTCOMES,
            outcome_labels=OUTCOME_LABELS,
            duration=duration,
            kind=query.kind or "",
            outcome=query.outcome or "",
            paged=query.before is not None,
            first=f"?{urlencode(query.params(before=None))}",
            older=older,
        )
