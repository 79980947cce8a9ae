"""Spectators over real sockets: a signed-in non-player watches ``/ws/<game_id>`` read-only.

A spectator's socket carries the public view only (no Bingo board, no pending RPS
choice), refuses every command but ``resume`` with the code ``spectator``, and is
counted: players and spectators get ``watchers`` messages. The lobby lists live games
and announces them on ``broadcast:lobby``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from app.runtime import Instance
from tests.conftest import MakeInstance, ws_url
from tests.handlers.test_accounts_api import Browser, data
from tests.handlers.test_game_page import attributes
from tests.handlers.test_game_socket import GameClient
from tests.handlers.test_lobby_api import act, challenge, http, lobby, message, player, user_socket
from tests.support import RedisProcess

__all__ = ["http"]  # the fixture, re-exported for pytest


async def start_game(
    http: AsyncHTTPClient, instance: Instance, kind: str, first: str = "alice", second: str = "bob"
) -> tuple[Browser, Browser, str]:
    """``first`` (seat 0) challenges ``second``, who accepts: a fresh game of ``kind``."""
    a, b = await player(http, instance, first), await player(http, instance, second)
    b.lobby_socket = await lobby(b, second)  # type: ignore[attr-defined]  # online
    sent = data(await challenge(a, second, kind))
    accepted = await act(b, sent["id"], "accept")
    assert accepted.code == 200, accepted.body
    return a, b, data(accepted)["game_id"]


async def watch(browser: Browser, game_id: str, flags: str = "subscribe-user") -> GameClient:
    """A spectator's game socket (any subscribe flag: the server picks the channel)."""
    conn = await user_socket(browser, f"/ws/{game_id}?{flags}", f"broadcast:{game_id}")
    return GameClient(conn, game_id)


async def stored(instance: Instance, game_id: str) -> Any:
    game = await instance.deps.games.get(game_id)  # type: ignore[union-attr]
    assert game is not None
    return game


def values(node: Any) -> Iterator[Any]:
    """Every value inside a parsed JSON message, lists included as wholes."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from values(value)
    elif isinstance(node, list):
        for value in node:
            yield from values(value)


def frames(client: GameClient) -> list[dict[str, Any]]:
    return [*client.states, *client.chat, *client.others]


async def until(client: GameClient, pred: Any, what: str) -> dict[str, Any]:
    """Read ``client`` until a message matches ``pred`` (each read times out after 5 s)."""
    for seen in frames(client):
        if pred(seen):
            return seen
    for _ in range(50):
        got = await client.next()
        if pred(got):
            return got
    raise AssertionError(f"no {what}")


async def watchers(client: GameClient, count: int) -> dict[str, Any]:
    """The next ``watchers`` message with ``count`` (later counts win: read in order)."""
    while True:
        got = await client.next()
        if got["type"] == "watchers":
            assert got["game_id"] == client.game_id
            if got["count"] == count:
                return got


async def test_bingo_spectator_sees_public_states_never_a_board(
    started: Any, http: AsyncHTTPClient
) -> None:
    instance = await started()
    alice_b, bob_b, game_id = await start_game(http, instance, "bingo")
    boards = (await stored(instance, game_id)).state["boards"]
    carol_b = await player(http, instance, "carol")
    alice, _ = await GameClient.open(alice_b, "alice", game_id)
    bob, _ = await GameClient.open(bob_b, "bob", game_id)
    carol = await watch(carol_b, game_id)  # asks for subscribe-user: gets the public channel
    registry = instance.deps.pubsub.registry  # type: ignore[union-attr]
    assert registry.subscribers(f"user:carol:{game_id}") == 0  # no player channel at all
    resumed = await carol.request({"type": "resume", "since": 0, "chat_since": 0})
    assert resumed["type"] == "resumed" and resumed["seq"] == 0
    assert carol.states and carol.states[-1]["seq"] == 0 and carol.states[-1]["replay"] is True
    # Players' own frames do carry their own board (so the checks below can fail).
    assert (await alice.state_at(0))["view"]["board"] == boards[0]
    assert (await bob.state_at(0))["view"]["board"] == boards[1]

    chain = [boards[1][0], boards[0][0], boards[1][1], boards[0][1], boards[1][2], boards[0][2]]
    called = list(dict.fromkeys(chain))[:3]  # distinct numbers; no line can be complete
    last = next(n for n in boards[0] if n not in called)
    for seq, number in enumerate(called, start=1):
        mover = alice if seq % 2 else bob
        await mover.state_at(seq - 1)
        assert (await mover.move({"number": number}))["type"] == "ack"
        state = await carol.state_at(seq)
        assert state["view"]["called"] == called[:seq]
        assert state["last"]["move"] == {"number": number}  # bingo calls are public
    chat = await alice.request({"type": "chat", "text": "good luck"})
    assert chat["type"] == "ack"
    await bob.state_at(3)
    assert (await bob.move({"number": last}))["type"] == "ack"
    await carol.state_at(4)
    assert (await alice.state_at(4))["view"]["board"] == boards[0]

    seen = frames(carol)
    assert [s["seq"] for s in carol.states] == [0, 1, 2, 3, 4]
    assert not carol.chat and all(m["type"] != "chat" for m in seen)  # chat stays private
    for frame in seen:
        for value in values(frame):
            assert value not in boards, f"a Bingo board reached the spectator: {frame}"
        if frame["type"] == "state":
            assert not {"board", "boards", "you", "marked"} & frame["view"].keys()


async def test_rps_spectator_never_sees_a_pending_choice(
    started: Any, http: AsyncHTTPClient
) -> None:
    instance = await started()
    alice_b, bob_b, game_id = await start_game(http, instance, "rps")
    carol_b = await player(http, instance, "carol")
    alice, _ = await GameClient.open(alice_b, "alice", game_id)
    bob, _ = await GameClient.open(bob_b, "bob", game_id)
    carol = await watch(carol_b, game_id, "subscribe-broadcast")
    await carol.request({"type": "resume", "since": 0, "chat_since": 0})

    assert (await alice.move({"choice": "scissors"}))["type"] == "ack"
    secret = await carol.state_at(1)
    assert (await alice.state_at(1))["view"]["your_choice"] == "scissors"  # the player's own
    assert secret["view"]["chosen"] == [True, False]
    assert "scissors" not in json.dumps(secret)
    assert not {"your_choice", "pending"} & secret["view"].keys()
    assert secret["last"]["move"] is None

    # A spectator arriving now resumes to the same public state: still no choice.
    dave_b = await player(http, instance, "dave")
    dave = await watch(dave_b, game_id)
    await dave.request({"type": "resume", "since": 0, "chat_since": 0})
    assert dave.states[-1]["seq"] == 1 and "scissors" not in json.dumps(frames(dave))

    await bob.state_at(1)
    assert (await bob.move({"choice": "paper"}))["type"] == "ack"
    settled = await carol.state_at(2)
    assert settled["view"]["rounds"][-1]["choices"] == ["scissors", "paper"]  # public once played
    assert "scissors" not in json.dumps(carol.states[:-1])


async def test_spectator_commands_are_refused_and_change_nothing(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice_b, _, game_id = await start_game(http, instance, "tictactoe")
    carol = await watch(await player(http, instance, "carol"), game_id)
    await carol.request({"type": "resume", "since": 0, "chat_since": 0})
    commands: list[dict[str, Any]] = [
        {"type": "move", "seq": 0, "move": {"cell": 4}},
        {"type": "resign"},
        {"type": "offer_draw"},
        {"type": "accept_draw"},
        {"type": "decline_draw"},
        {"type": "chat", "text": "hello"},
    ]
    for command in commands:
        answer = await carol.request(command)
        assert (answer["type"], answer["code"]) == ("error", "spectator"), command
    game = await stored(instance, game_id)
    assert (game.seq, game.version, game.chat, game.status.value) == (0, 0, 0, "active")
    # Still open, still following the game.
    assert (await carol.request({"type": "resume", "since": 0, "chat_since": 0}))["seq"] == 0
    body = {"move": {"cell": 4}, "seq": 0}
    move = await alice_b.call("POST", f"/api/games/{game_id}/moves", body)
    assert move.code == 200
    assert (await carol.state_at(1))["last"]["move"] == {"cell": 4}


async def test_the_game_page_in_spectator_mode(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice, _, game_id = await start_game(http, instance, "bingo")
    mine = (await alice.call("GET", f"/game/{game_id}")).body.decode()
    assert attributes(mine)["spectator"] == "no" and "watching-banner" not in mine
    carol = await player(http, instance, "carol")
    page = await carol.call("GET", f"/game/{game_id}")
    assert page.code == 200
    body = page.body.decode()
    found = attributes(body)
    assert (found["spectator"], found["me"], found["game-id"]) == ("yes", "carol", game_id)
    assert 'id="watching-banner"' in body
    assert re.search(r'id="game-actions"[^>]*hidden', body)
    assert re.search(r'id="chat-panel"[^>]*hidden', body)
    signed_out = await Browser(http, instance).call("GET", f"/game/{game_id}")
    assert signed_out.code == 302
    assert signed_out.headers["Location"] == f"/login?next=/game/{game_id}"


async def test_anonymous_visitors_cannot_watch(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    _, _, game_id = await start_game(http, instance, "tictactoe")
    for flags in ("subscribe-user", "subscribe-broadcast"):
        request = HTTPRequest(ws_url(instance, f"/ws/{game_id}?{flags}"))
        with pytest.raises(Exception) as refused:
            await asyncio.wait_for(websocket_connect(request), timeout=5)
        assert getattr(refused.value, "code", None) == 403, flags
    # The refusal happens before the upgrade, with a one-line reason.
    plain = await Browser(http, instance).call("GET", f"/ws/{game_id}?subscribe-user")
    assert plain.code == 403 and b"sign in" in plain.body


async def test_watcher_counts_reach_players_and_spectators(
    started: Any, http: AsyncHTTPClient
) -> None:
    instance = await started()
    alice_b, _, game_id = await start_game(http, instance, "tictactoe")
    alice, _ = await GameClient.open(alice_b, "alice", game_id)
    assert {"type": "watchers", "game_id": game_id, "count": 0} in alice.others  # on resume

    carol_b = await player(http, instance, "carol")
    carol = await watch(carol_b, game_id)
    await watchers(alice, 1)
    await carol.request({"type": "resume", "since": 0, "chat_since": 0})
    await until(carol, lambda m: m == {"type": "watchers", "game_id": game_id, "count": 1}, "1")

    dave = await watch(await player(http, instance, "dave"), game_id)
    await watchers(alice, 2)
    await watchers(carol, 2)
    # A second socket of the same user is not a second watcher.
    again = await watch(carol_b, game_id)
    await again.request({"type": "resume", "since": 0, "chat_since": 0})
    assert (await until(again, lambda m: m["type"] == "watchers", "count"))["count"] == 2
    again.conn.close()
    carol.conn.close()
    await watchers(alice, 1)
    await watchers(dave, 1)


async def test_watchers_add_up_across_instances(
    make_instance: MakeInstance, redis_server: RedisProcess, http: AsyncHTTPClient
) -> None:
    shared = {"redis.url": redis_server.url, "server.cookie_secret": "spectators-test-secret"}
    one = await make_instance(**shared, **{"server.instance_id": "one"})
    two = await make_instance(**shared, **{"server.instance_id": "two"})
    alice_b, _, game_id = await start_game(http, one, "tictactoe")
    alice, _ = await GameClient.open(alice_b, "alice", game_id)
    carol = await watch(await player(http, one, "carol"), game_id)
    await watchers(alice, 1)
    dave_b = await player(http, one, "dave")
    dave_b.instance = two  # the same account and session, served by the other instance
    dave = await watch(dave_b, game_id)
    await watchers(alice, 2)
    await dave.request({"type": "resume", "since": 0, "chat_since": 0})
    await until(dave, lambda m: m.get("count") == 2, "count 2 on the other instance")
    key = f"watchers:{game_id}"
    assert redis_server.client().hgetall(key) == {b"one": b"1", b"two": b"1"}
    assert redis_server.client().ttl(key) > 0
    carol.conn.close()
    await watchers(alice, 1)
    await watchers(dave, 1)
    assert redis_server.client().hgetall(key) == {b"two": b"1"}


async def lobby_message(conn: WebSocketClientConnection, kind: str) -> dict[str, Any]:
    while True:
        got: dict[str, Any] = await message(conn)
        if got.get("type") == kind:
            return got


async def test_lobby_lists_live_games_and_announces_them(
    started: Any, http: AsyncHTTPClient
) -> None:
    instance = await started()
    carol = await player(http, instance, "carol")
    feed = await user_socket(
        carol, "/ws/lobby?subscribe-broadcast&subscribe-user", "broadcast:lobby"
    )
    alice_b, _, game_id = await start_game(http, instance, "connect4")
    live = await lobby_message(feed, "game_live")
    entry = live["game"]
    assert {k: entry[k] for k in ("game_id", "kind", "players", "url")} == {
        "game_id": game_id,
        "kind": "connect4",
        "players": ["alice", "bob"],
        "url": f"/game/{game_id}",
    }
    listed = data(await carol.call("GET", "/api/lobby"))["live_games"]
    assert listed == [entry]

    other = await start_game(http, instance, "tictactoe", "erin", "frank")
    newest = data(await carol.call("GET", "/api/lobby"))["live_games"]
    assert [g["game_id"] for g in newest] == [other[2], game_id]  # newest first

    assert (await alice_b.call("POST", f"/api/games/{game_id}/resign")).code == 200
    assert await lobby_message(feed, "game_over") == {"type": "game_over", "game_id": game_id}
    after = data(await carol.call("GET", "/api/lobby"))["live_games"]
    assert [g["game_id"] for g in after] == [other[2]]
