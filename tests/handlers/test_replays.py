"""Replays over real HTTP: every position of a finished game, rebuilt from the event log."""

from __future__ import annotations

from typing import Any

from tornado.httpclient import AsyncHTTPClient

from app.games import registry
from app.runtime import Instance
from tests.conftest import MakeInstance
from tests.handlers.test_accounts_api import Browser, assert_error, data
from tests.handlers.test_games_api import move, new_game
from tests.handlers.test_lobby_api import act, challenge, http, lobby, player

__all__ = ["http"]  # the fixture, re-exported for pytest


async def final_state(instance: Instance, game_id: str) -> dict[str, Any]:
    game = await instance.deps.games.get(game_id)  # type: ignore[union-attr]
    assert game is not None
    return game.state


async def test_a_finished_game_replays_move_by_move(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice, bob, game_id = await new_game(http, instance)
    browsers = {"alice": alice, "bob": bob}
    plan = [("alice", 0), ("bob", 3), ("alice", 1), ("bob", 4), ("alice", 2)]
    for seq, (name, cell) in enumerate(plan):
        assert (await move(browsers[name], game_id, cell, seq)).code == 200

    carol = await player(http, instance, "carol")  # any signed-in user may watch
    replay = data(await carol.call("GET", f"/api/games/{game_id}/replay"))
    won = {"status": "win", "winner": "alice", "reason": "three in a row"}
    assert (replay["game"], replay["kind"], replay["title"]) == (
        game_id,
        "tictactoe",
        "Tic-tac-toe",
    )
    assert (replay["players"], replay["result"]) == (["alice", "bob"], won)
    assert replay["start"]["board"] == [None] * 9
    frames = replay["frames"]
    assert [f["seq"] for f in frames] == [1, 2, 3, 4, 5]
    for frame, (name, cell) in zip(frames, plan, strict=True):
        last = {k: frame["last"][k] for k in ("player", "type", "move")}
        assert last == {"player": name, "type": "move", "move": {"cell": cell}}
        assert frame["view"]["board"][cell] == (0 if name == "alice" else 1)
    assert frames[2]["view"]["board"] == [0, 0, None, 1, None, None, None, None, None]
    assert frames[2]["to_move"] == ["bob"] and frames[-1]["to_move"] == []
    rules = registry.GAMES["tictactoe"]
    assert frames[-1]["view"] == rules.view(await final_state(instance, game_id), None)
    assert frames[-1]["view"]["result"] == won


async def test_only_finished_games_replay_for_signed_in_users(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice, bob, game_id = await new_game(http, instance)
    assert (await move(alice, game_id, 4, 0)).code == 200
    assert_error(await alice.call("GET", f"/api/games/{game_id}/replay"), 409, "game_active")
    assert_error(await alice.call("GET", "/api/games/nosuchgame/replay"), 404, "not_found")
    signed_out = Browser(http, instance)
    assert_error(await signed_out.call("GET", f"/api/games/{game_id}/replay"), 401, "not_signed_in")

    resigned = await bob.call("POST", f"/api/games/{game_id}/resign")
    assert resigned.code == 200
    replay = data(await alice.call("GET", f"/api/games/{game_id}/replay"))
    result = {"status": "win", "winner": "alice", "reason": "resigned"}
    assert replay["result"] == result
    frames = replay["frames"]
    assert [(f["last"]["player"], f["last"]["type"]) for f in frames] == [
        ("alice", "move"),
        ("bob", "resign"),
    ]
    assert frames[0]["view"]["result"] is None
    assert frames[1]["view"]["board"] == frames[0]["view"]["board"]  # a resignation moves nothing
    assert frames[1]["view"]["result"] == result
    rules = registry.GAMES["tictactoe"]
    assert frames[-1]["view"] == rules.view(await final_state(instance, game_id), None)
    assert_error(await signed_out.call("GET", f"/api/games/{game_id}/replay"), 401, "not_signed_in")

    page = await alice.call("GET", f"/replay/{game_id}")
    assert page.code == 200 and b'data-kind="tictactoe"' in page.body
    assert b"<script>" not in page.body  # no inline script (CSP)


async def test_bingo_boards_stay_hidden_until_the_last_frame(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice, bob = await player(http, instance, "alice"), await player(http, instance, "bob")
    bob.lobby_socket = await lobby(bob, "bob")  # type: ignore[attr-defined]
    sent = data(await challenge(alice, "bob", "bingo"))
    game_id = data(await act(bob, sent["id"], "accept"))["game_id"]
    browsers = [alice, bob]
    seq, result = 0, None
    for number in range(1, 26):  # calling every number ends the game for certain
        body = {"move": {"number": number}, "seq": seq}
        ack = data(await browsers[seq % 2].call("POST", f"/api/games/{game_id}/moves", body))
        seq, result = ack["seq"], ack["result"]
        if result is not None:
            break
    assert result is not None

    replay = data(await alice.call("GET", f"/api/games/{game_id}/replay"))
    frames = replay["frames"]
    assert len(frames) == seq and replay["result"] == result
    hidden = {"board", "boards", "marked", "you"}
    assert not hidden & set(replay["start"])
    for frame in frames[:-1]:
        assert not hidden & set(frame["view"]), frame["view"].keys()
        assert frame["view"]["result"] is None
    rules = registry.GAMES["bingo"]
    final = await final_state(instance, game_id)
    assert frames[-1]["view"] == rules.view(final, None)
    assert frames[-1]["view"]["boards"] == final["boards"]  # revealed at the end only
