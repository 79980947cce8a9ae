"""The game socket protocol over real sockets: resume, moves with acks, errors, chat,
draws, reconnect replay (on the same and on another instance), clocks and abandonment."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests.conftest import MakeInstance, http_url, ws_url
from tests.handlers.test_accounts_api import Browser, data
from tests.handlers.test_games_api import new_game
from tests.handlers.test_lobby_api import http, message, user_socket
from tests.support import RedisProcess

__all__ = ["http"]  # the fixture, re-exported for pytest


class GameClient:
    """One player's game socket that speaks the protocol and remembers what it saw."""

    def __init__(self, conn: WebSocketClientConnection, game_id: str) -> None:
        self.conn = conn
        self.game_id = game_id
        self.states: list[dict[str, Any]] = []
        self.chat: list[dict[str, Any]] = []
        self.others: list[dict[str, Any]] = []
        self._ids = 0

    @classmethod
    async def open(
        cls, browser: Browser, name: str, game_id: str, *, since: int = 0, chat_since: int = 0
    ) -> tuple[GameClient, dict[str, Any]]:
        conn = await user_socket(browser, f"/ws/{game_id}?subscribe-user", f"user:{name}:{game_id}")
        client = cls(conn, game_id)
        resumed = await client.request({"type": "resume", "since": since, "chat_since": chat_since})
        return client, resumed

    async def send(self, message: dict[str, Any]) -> int:
        self._ids += 1
        await self.conn.write_message(json.dumps({**message, "id": self._ids}))
        return self._ids

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` and return the answer with its id (ack, resumed or error)."""
        msg_id = await self.send(message)
        while True:
            got = await self.next()
            if got.get("id") == msg_id and got["type"] in ("ack", "resumed", "error"):
                return got

    async def next(self) -> dict[str, Any]:
        got: dict[str, Any] = await message(self.conn)
        if got["type"] == "state":
            self.states.append(got)
        elif got["type"] == "chat":
            self.chat.append(got)
        else:
            self.others.append(got)
        return got

    async def state_at(self, seq: int) -> dict[str, Any]:
        """Read until the state with ``seq`` has arrived (it may already have)."""
        while not any(s["seq"] == seq for s in self.states):
            await self.next()
        return next(s for s in self.states if s["seq"] == seq)

    async def move(self, move: dict[str, Any]) -> dict[str, Any]:
        seq = self.states[-1]["seq"] if self.states else 0
        return await self.request({"type": "move", "seq": seq, "move": move})


async def test_resume_moves_acks_and_views(started: Any, http: AsyncHTTPClient) -> None:
    instance = await started()
    alice_b, bob_b, game_id = await new_game(http, instance)
    alice, resumed = await GameClient.open(alice_b, "alice", game_id)
    assert resumed == {"type": "resumed", "id": 1, "seq": 0, "chat": 0}
    first = alice.states[-1]
    assert (first["seq"], first["status"], first["kind"], first["players"]) == (
        0,
        "active",
        "tictactoe",
        ["alice", "bob"],
    )
    assert first["to_move"] == ["alice"] and first["clock"]["running"] == ["alice"]
    bob, _ = await GameClient.open(bob_b, "bob", game_id)

    ack = await alice.move({"cell": 4})
    assert (ack["type"], ack["seq"], ack["version"], ack["result"]) == ("ack", 1, 1, None)
    for client in (alice, bob):
        state = await client.state_at(1)
        assert state["last"]["move"] == {"cell": 4} and state["to_move"] == ["bob"]
        assert state["view"]["board"][4] is not None
    stored = data(await bob_b.call("GET", f"/api/games/{game_id}"))
    assert stored["seq"] == 1
    metrics = (await http.fetch(http_url(instance, "/metrics"))).body.decode()
    assert 'playhouse_game_commands_total{answer="ack",type="MoveCommand"} 1.0' in metrics


async def test_bad_messages_get_clear_errors_and_store_nothing(
    started: Any, http: AsyncHTTPClient
) -> None:
    instance = await started()
    alice_b, bob_b, game_id = await new_game(http, instance)
    alice, _ = await GameClient.open(alice_b, "alice", game_id)
    bob, _ = await GameClient.open(bob_b, "bob", game_id)

    await alice.conn.write_message("{not json")
    assert (await alice.next())["code"] == "bad_json"
    await alice.conn.write_message("[1, 2]")
    assert (await alice.next())["code"] == "bad_message"
    cases = [
        (bob, {"type": "move", "seq": 0, "move": {"cell": 0}}, "not_your_turn"),
        (alice, {"type": "teleport"}, "unknown_type"),
        (alice, {"type": "move", "seq": "x", "move": {"cell": 0}}, "bad_message"),
        (alice, {"type": "move", "seq": 0, "move": {"cell": 99}}, "bad_move"),
        (alice, {"type": "move", "seq": 0, "move": {"cell": 0, "pad": "x" * 2000}}, "bad_move"),
        (alice, {"type": "move", "seq": 0, "move": "cell 0"}, "bad_move"),
        (alice, {"type": "move", "game": "0" * 16, "seq": 0, "move": {"cell": 0}}, "wrong_game"),
        (alice, {"type": "move", "seq": 5, "move": {"cell": 0}}, "stale"),
        (alice, {"type": "chat", "text": "   "}, "bad_chat"),
        (alice, {"type": "chat", "text": "x" * 501}, "bad_chat"),
        (alice, {"type": "accept_draw"}, "no_draw_offer"),
    ]
    for client, sent, code in cases:
        answer = await client.request(sent)
        assert (answer["type"], answer["code"]) == ("error", code), (sent, answer)
        assert "Traceback" not in answer["message"]
    stale = await alice.request({"type": "move", "seq": 3, "move": {"cell": 0}})
    assert stale["current"]["seq"] == 0 and stale["current"]["view"]["board"] == [None] * 9
    game = await instance.deps.games.get(game_id)  # type: ignore[union-attr]
    assert game is not None and (game.seq, game.chat) == (0, 0)
    # The socket stayed open through all of it.
    assert (await alice.move({"cell": 0}))["type"] == "ack"


async def test_signed_out_visitors_cannot_open_a_game_socket(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    """Signed-in outsiders become spectators (tests/handlers/test_spectators.py); the
    signed-out get a 403 before the upgrade."""
    instance = await make_instance()
    _, _, game_id = await new_game(http, instance)
    request = HTTPRequest(ws_url(instance, f"/ws/{game_id}?subscribe-user"))
    with pytest.raises(Exception) as refused:
        await asyncio.wait_for(websocket_connect(request), timeout=5)
    assert getattr(refused.value, "code", None) == 403


async def test_chat_is_numbered_stored_and_replayed(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice_b, bob_b, game_id = await new_game(http, instance)
    alice, _ = await GameClient.open(alice_b, "alice", game_id)
    bob, _ = await GameClient.open(bob_b, "bob", game_id)
    ack = await alice.request({"type": "chat", "text": "<b>good luck</b>\u0007"})
    assert (ack["type"], ack["chat"]) == ("ack", 1)
    for client in (alice, bob):
        while not client.chat:
            await client.next()
        line = client.chat[0]
        assert (line["n"], line["from"], line["text"]) == (1, "alice", "<b>good luck</b>")
    await bob.request({"type": "chat", "text": "you too"})
    late, resumed = await GameClient.open(bob_b, "bob", game_id, since=0, chat_since=1)
    assert resumed["chat"] == 2
    assert [(c["n"], c["text"]) for c in late.chat] == [(2, "you too")]


async def test_draw_offer_and_acceptance_end_the_game(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice_b, bob_b, game_id = await new_game(http, instance)
    alice, _ = await GameClient.open(alice_b, "alice", game_id)
    bob, _ = await GameClient.open(bob_b, "bob", game_id)
    assert (await alice.request({"type": "offer_draw"}))["seq"] == 1
    assert (await alice.request({"type": "offer_draw"}))["code"] == "draw_offered"
    offered = await bob.state_at(1)
    assert offered["draw_offer"] == "alice" and offered["last"]["type"] == "offer_draw"
    assert (await bob.request({"type": "decline_draw"}))["seq"] == 2
    assert (await bob.state_at(2))["draw_offer"] is None
    await bob.request({"type": "offer_draw"})
    ack = await alice.request({"type": "accept_draw"})
    assert ack["result"] == {"status": "draw", "winner": None, "reason": "agreed"}
    final = await bob.state_at(4)
    assert final["status"] == "finished" and final["to_move"] == []
    assert (await alice.move({"cell": 0}))["code"] == "game_over"


async def test_reconnect_replays_exactly_the_missed_events(
    started: Any, http: AsyncHTTPClient
) -> None:
    instance = await started()
    alice_b, bob_b, game_id = await new_game(http, instance)
    bob, _ = await GameClient.open(bob_b, "bob", game_id)
    first = await alice_b.call(
        "POST", f"/api/games/{game_id}/moves", {"move": {"cell": 0}, "seq": 0}
    )
    assert first.code == 200, first.body
    seen = (await bob.state_at(1))["seq"]
    bob.conn.close()
    plan = [(bob_b, 4), (alice_b, 8), (bob_b, 2), (alice_b, 6), (bob_b, 3)]
    for seq, (who, cell) in enumerate(plan, start=seen):
        response = await who.call(
            "POST", f"/api/games/{game_id}/moves", {"move": {"cell": cell}, "seq": seq}
        )
        assert response.code == 200, response.body
    again, resumed = await GameClient.open(bob_b, "bob", game_id, since=seen)
    assert [s["seq"] for s in again.states] == [2, 3, 4, 5, 6]
    assert [s["last"]["move"]["cell"] for s in again.states] == [4, 8, 2, 6, 3]
    assert all(s["replay"] for s in again.states) and resumed["seq"] == 6
    assert (
        again.states[-1]["view"]["board"]
        == data(await bob_b.call("GET", f"/api/games/{game_id}"))["view"]["board"]
    )
    # Then live, and nothing twice.
    live_move = {"move": {"cell": 7}, "seq": 6}
    assert (await alice_b.call("POST", f"/api/games/{game_id}/moves", live_move)).code == 200
    live = await again.state_at(7)
    assert not live["replay"] and live["result"]["winner"] == "alice"
    assert [s["seq"] for s in again.states] == [2, 3, 4, 5, 6, 7]


async def test_resume_on_another_instance(
    make_instance: MakeInstance, redis_server: RedisProcess, http: AsyncHTTPClient
) -> None:
    shared = {"redis.url": redis_server.url, "server.cookie_secret": "one-secret-for-both"}
    first = await make_instance(**shared)
    second = await make_instance(**shared)
    alice_b, bob_b, game_id = await new_game(http, first)
    alice, _ = await GameClient.open(alice_b, "alice", game_id)
    for seq, cell in enumerate((0, 3, 1)):
        who = alice if seq % 2 == 0 else None
        if who is None:
            await bob_b.call(
                "POST", f"/api/games/{game_id}/moves", {"move": {"cell": cell}, "seq": seq}
            )
            await alice.state_at(seq + 1)
        else:
            assert (await who.move({"cell": cell}))["type"] == "ack"
    alice.conn.close()
    moved = Browser(http, second)
    moved.cookies = dict(alice_b.cookies)
    other, resumed = await GameClient.open(moved, "alice", game_id, since=1)
    assert [s["seq"] for s in other.states] == [2, 3] and resumed["seq"] == 3
    await bob_b.call("POST", f"/api/games/{game_id}/moves", {"move": {"cell": 4}, "seq": 3})
    assert (await other.state_at(4))["last"]["move"] == {"cell": 4}


async def test_move_limit_times_out_the_player_to_move(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance(**{"games.move_seconds": 0.5, "games.sweep_interval": 0.05})
    _, bob_b, game_id = await new_game(http, instance)
    bob, _ = await GameClient.open(bob_b, "bob", game_id)
    assert bob.states[-1]["clock"]["move_limit_ms"] == 500
    final = await bob.state_at(1)
    assert final["result"] == {"status": "win", "winner": "bob", "reason": "timeout"}
    assert final["last"]["type"] == "timeout" and final["last"]["player"] == "alice"
    lobby = data(await bob_b.call("GET", "/api/lobby"))
    assert {p["username"]: p["status"] for p in lobby["online"]}.get("bob") == "online"


async def test_a_player_gone_too_long_loses(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance(**{"games.abandon_seconds": 0.5, "games.sweep_interval": 0.05})
    alice_b, bob_b, game_id = await new_game(http, instance)
    alice, _ = await GameClient.open(alice_b, "alice", game_id)
    bob, _ = await GameClient.open(bob_b, "bob", game_id)
    bob.conn.close()
    left = await alice.next()
    while left["type"] != "player":
        left = await alice.next()
    assert (left["player"], left["connected"], left["forfeit_in_ms"]) == ("bob", False, 500)
    final = await alice.state_at(1)
    assert final["result"] == {"status": "win", "winner": "alice", "reason": "abandoned"}
    assert final["last"]["type"] == "abandon"


async def test_coming_back_in_time_cancels_the_forfeit(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance(**{"games.abandon_seconds": 30.0})
    alice_b, bob_b, game_id = await new_game(http, instance)
    alice, _ = await GameClient.open(alice_b, "alice", game_id)
    bob, _ = await GameClient.open(bob_b, "bob", game_id)
    bob.conn.close()
    games = instance.deps.games  # type: ignore[union-attr]

    async def away() -> set[str]:
        game = await games.get(game_id)
        return set(game.away) if game else set()

    while "bob" not in await away():
        await alice.next()  # the "player" message arrives as the absence is stored
    back, _ = await GameClient.open(bob_b, "bob", game_id)
    returned = await alice.next()
    while returned["type"] != "player":
        returned = await alice.next()
    assert (returned["player"], returned["connected"]) == ("bob", True)
    assert await away() == set()
    assert (await alice.move({"cell": 0}))["type"] == "ack"
    assert (await back.state_at(1))["away"] == {}


async def test_a_socket_left_on_another_instance_keeps_the_player_present(
    make_instance: MakeInstance, redis_server: RedisProcess, http: AsyncHTTPClient
) -> None:
    """bob has the game open on two instances and closes one: the instance that saw him
    go marks him away, the other (still holding his socket) marks him back at once, so he
    never forfeits while a socket of his is open."""
    shared = {
        "redis.url": redis_server.url,
        "server.cookie_secret": "one-secret-for-both",
        "games.abandon_seconds": 1.0,
        "games.sweep_interval": 0.05,
    }
    first = await make_instance(**shared)
    second = await make_instance(**shared)
    alice_b, bob_b, game_id = await new_game(http, first)
    alice, _ = await GameClient.open(alice_b, "alice", game_id)
    bob_here, _ = await GameClient.open(bob_b, "bob", game_id)
    elsewhere = Browser(http, second)
    elsewhere.cookies = dict(bob_b.cookies)
    bob_there, _ = await GameClient.open(elsewhere, "bob", game_id)

    bob_here.conn.close()
    seen = []
    while len(seen) < 2:  # gone (from the first instance), then back (from the second)
        got = await alice.next()
        if got["type"] == "player":
            seen.append((got["player"], got["connected"]))
    assert seen == [("bob", False), ("bob", True)]
    games = first.deps.games  # type: ignore[union-attr]
    stored = await games.get(game_id)
    assert stored is not None and stored.away == {}
    # No absence stored, so no forfeit deadline: the game goes on on bob's other socket.
    assert (await alice.move({"cell": 0}))["type"] == "ack"
    assert (await bob_there.state_at(1))["status"] == "active"
    assert (await bob_there.move({"cell": 4}))["type"] == "ack"
