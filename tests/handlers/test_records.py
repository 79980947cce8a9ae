"""Players' histories over real HTTP: finished games as records, filters, cursor pages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient

from app.runtime import Instance
from app.storage.games import GameEvent
from tests.conftest import MakeInstance
from tests.handlers.test_accounts_api import Browser, assert_error, data
from tests.handlers.test_games_api import new_game
from tests.handlers.test_lobby_api import act, challenge, http, lobby, player

__all__ = ["http"]  # the fixture, re-exported for pytest


async def start(challenger: Browser, to: str, kind: str = "tictactoe") -> str:
    """A new game of ``kind``: ``challenger`` challenges ``to``, who accepts (``to``'s
    browser is found by name in ``challenger.peers``)."""
    sent = await challenge(challenger, to, kind)
    assert sent.code == 201, sent.body
    accepted = await act(challenger.peers[to], data(sent)["id"], "accept")  # type: ignore[attr-defined]
    assert accepted.code == 200, accepted.body
    game_id: str = data(accepted)["game_id"]
    return game_id


async def resign(loser: Browser, game_id: str) -> None:
    response = await loser.call("POST", f"/api/games/{game_id}/resign")
    assert response.code == 200, response.body


async def draw(offering: Browser, accepting: Browser, game_id: str) -> None:
    path = f"/api/games/{game_id}/draw"
    assert (await offering.call("POST", path, {"action": "offer"})).code == 200
    assert (await accepting.call("POST", path, {"action": "accept"})).code == 200


async def history(browser: Browser, name: str, **params: Any) -> Any:
    query = f"?{urlencode(params)}" if params else ""
    response = await browser.call("GET", f"/api/users/{name}/games{query}")
    assert response.code == 200, response.body
    return data(response)


async def online(http: AsyncHTTPClient, instance: Instance, name: str) -> Browser:
    browser = await player(http, instance, name)
    browser.lobby_socket = await lobby(browser, name)  # type: ignore[attr-defined]
    return browser


async def test_a_won_game_is_a_record_for_both_sides(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice, bob, game_id = await new_game(http, instance)
    assert await history(alice, "alice") == {"games": [], "next": None}  # still playing
    for version, cell in enumerate([0, 3, 1]):
        mover = alice if version % 2 == 0 else bob
        body = {"move": {"cell": cell}, "seq": version}
        assert (await mover.call("POST", f"/api/games/{game_id}/moves", body)).code == 200
    await resign(bob, game_id)

    mine = await history(alice, "alice")
    assert mine["next"] is None and len(mine["games"]) == 1
    won = mine["games"][0]
    assert won["finished_at"].endswith("Z") and isinstance(won["duration_s"], int)
    assert won["duration_s"] >= 0
    del won["finished_at"], won["duration_s"]
    assert won == {
        "game_id": game_id,
        "kind": "tictactoe",
        "title": "Tic-tac-toe",
        "players": ["alice", "bob"],
        "opponent": "bob",
        "result": {"status": "win", "winner": "alice", "reason": "resigned"},
        "reason": "resign",
        "outcome": "win",
        "moves": 3,
        "url": f"/game/{game_id}",
        "replay_url": f"/replay/{game_id}",
    }
    # bob's side of the same game, read by alice: any signed-in user sees any history,
    # and the name is matched without regard to case.
    lost = (await history(alice, "BOB"))["games"][0]
    assert (lost["game_id"], lost["opponent"], lost["outcome"]) == (game_id, "alice", "loss")
    assert (await history(bob, "bob"))["games"][0]["outcome"] == "loss"


async def test_filters_pages_and_errors(make_instance: MakeInstance, http: AsyncHTTPClient) -> None:
    instance = await make_instance()
    alice = await online(http, instance, "alice")
    bob = await online(http, instance, "bob")
    carol = await online(http, instance, "carol")
    alice.peers = {"bob": bob, "carol": carol}  # type: ignore[attr-defined]

    # Oldest first: what each game ends as, from alice's side.
    played: list[tuple[str, str, str]] = []  # (game_id, kind, alice's outcome)
    game = await start(alice, "bob")
    await resign(bob, game)
    played.append((game, "tictactoe", "win"))
    game = await start(alice, "carol", "connect4")
    await resign(alice, game)
    played.append((game, "connect4", "loss"))
    game = await start(alice, "bob")
    await draw(alice, bob, game)
    played.append((game, "tictactoe", "draw"))
    game = await start(alice, "carol")
    await resign(alice, game)
    played.append((game, "tictactoe", "loss"))
    game = await start(alice, "bob", "connect4")
    await resign(bob, game)
    played.append((game, "connect4", "win"))
    newest_first = played[::-1]

    everything = await history(alice, "alice", limit=100)
    assert [g["game_id"] for g in everything["games"]] == [g for g, _, _ in newest_first]
    assert [g["outcome"] for g in everything["games"]] == [o for _, _, o in newest_first]
    assert everything["next"] is None
    drawn = next(g for g in everything["games"] if g["outcome"] == "draw")
    assert drawn["reason"] == "draw" and drawn["result"]["reason"] == "agreed"
    bobs = (await history(alice, "bob"))["games"]
    assert [g["outcome"] for g in bobs] == ["loss", "draw", "loss"]  # alice: win, draw, win

    # Pages of two, following ``next``: every game once, in order, then next is null.
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await history(alice, "alice", limit=2, **({"before": cursor} if cursor else {}))
        pages += 1
        seen += [g["game_id"] for g in page["games"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [g for g, _, _ in newest_first] and pages == 3

    for outcome in ("win", "loss", "draw"):
        got = await history(alice, "alice", outcome=outcome)
        assert [g["game_id"] for g in got["games"]] == [
            g for g, _, o in newest_first if o == outcome
        ]
    connect4 = await history(alice, "alice", kind="connect4")
    assert [g["game_id"] for g in connect4["games"]] == [
        g for g, k, _ in newest_first if k == "connect4"
    ]
    both = await history(alice, "alice", kind="tictactoe", outcome="loss", limit=1)
    assert [g["game_id"] for g in both["games"]] == [played[3][0]] and both["next"] is None
    # carol's view: she won both her games against alice.
    carols = await history(bob, "carol")
    assert [(g["opponent"], g["outcome"]) for g in carols["games"]] == [("alice", "win")] * 2
    assert (await history(carol, "carol", outcome="loss"))["games"] == []

    # A bare ISO time as ``before`` is accepted: strictly older games.
    middle = everything["games"][2]["finished_at"]
    older = await history(alice, "alice", before=middle)
    assert [g["game_id"] for g in older["games"]] == [g for g, _, _ in newest_first[3:]]

    base = "/api/users/alice/games"
    assert_error(await alice.call("GET", f"{base}?kind=chess"), 400, "invalid", field="kind")
    assert_error(await alice.call("GET", f"{base}?outcome=won"), 400, "invalid", field="outcome")
    assert_error(await alice.call("GET", f"{base}?before=yesterday"), 400, "invalid", "before")
    for limit in ("0", "101", "-1", "two"):
        assert_error(await alice.call("GET", f"{base}?limit={limit}"), 400, "invalid", "limit")
    assert_error(await alice.call("GET", "/api/users/nobody/games"), 404, "unknown_user")
    assert_error(await Browser(http, instance).call("GET", base), 401, "not_signed_in")


async def test_history_page(make_instance: MakeInstance, http: AsyncHTTPClient) -> None:
    instance = await make_instance()
    alice, bob, game_id = await new_game(http, instance)
    await resign(alice, game_id)

    response = await bob.call("GET", "/users/alice/history?outcome=loss")
    assert response.code == 200, response.body
    page = response.body.decode()
    assert f'data-game-id="{game_id}" data-outcome="loss"' in page
    assert 'href="/users/bob/history"' in page  # the opponent's history, and "My games"
    assert f'href="/replay/{game_id}"' in page
    assert '<option value="loss" selected>' in page
    assert "<script>" not in page and 'id="older"' not in page

    empty = (await bob.call("GET", "/users/alice/history?outcome=win")).body.decode()
    assert 'id="no-records"' in empty and game_id not in empty
    assert (await bob.call("GET", "/users/nobody/history")).code == 404
    assert (await bob.call("GET", "/users/alice/history?kind=chess")).code == 400
    signed_out = await Browser(http, instance).call("GET", "/users/alice/history")
    assert signed_out.code == 302
    assert signed_out.headers["Location"] == "/login?next=/users/alice/history"


async def test_pages_split_games_finished_in_the_same_millisecond(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    """The cursor carries the game id too, so ties on ``finished_at`` neither repeat nor
    drop a game across pages."""
    instance = await make_instance()
    alice = await player(http, instance, "alice")
    await player(http, instance, "bob")
    games = instance.deps.games  # type: ignore[union-attr]
    at = datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    result = {"status": "win", "winner": "bob", "reason": "resigned"}
    ids = [f"tie{n}" for n in range(3)]
    for game_id in ids:
        await games.create(
            game_id=game_id, kind="rps", players=("alice", "bob"), seed=1, state={}, now=at
        )
        event = GameEvent(game_id, 1, "alice", "resign", None, 1, at, result)
        fields = {"status": "finished", "result": result}
        assert await games.save(game_id, expected_version=0, fields=fields, event=event)

    seen, cursor = [], None
    while True:
        page = await history(alice, "alice", limit=1, **({"before": cursor} if cursor else {}))
        seen += [(g["game_id"], g["finished_at"], g["outcome"]) for g in page["games"]]
        if (cursor := page["next"]) is None:
            break
    stamp = "2026-05-01T12:00:00.123Z"
    assert seen == [(game_id, stamp, "loss") for game_id in reversed(ids)]
    assert (await history(alice, "alice", before=stamp))["games"] == []  # a bare time
