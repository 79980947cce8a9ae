"""Chromium through nginx in front of two instances (Redis, the MongoDB server, all real):
two players whose game sockets are on different instances play a game to the end.

Which instance a page's socket landed on is read from the upgrade answer's
``X-Playhouse-Instance`` header through the DevTools protocol (the page is not touched).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import expect

from deploy.cluster import Cluster
from tests.cluster.conftest import cluster
from tests.e2e.test_game_browser import GAME_READY, NewPage, Player, both, new_page, start_game

__all__ = ["cluster", "new_page"]  # fixtures, re-exported for pytest

pytestmark = [pytest.mark.browser, pytest.mark.redis]


class SocketInstances:
    """Every WebSocket a page opens, with the instance that answered its upgrade."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.urls: dict[str, str] = {}
        self.instance: dict[str, str] = {}
        self.closed: set[str] = set()
        cdp = page.context.new_cdp_session(page)
        cdp.on("Network.webSocketCreated", self._created)
        cdp.on("Network.webSocketHandshakeResponseReceived", self._answered)
        cdp.on("Network.webSocketClosed", lambda event: self.closed.add(event["requestId"]))
        cdp.send("Network.enable")
        self.cdp = cdp

    def _created(self, event: dict[str, Any]) -> None:
        self.urls[event["requestId"]] = event["url"]

    def _answered(self, event: dict[str, Any]) -> None:
        headers = {k.lower(): v for k, v in event["response"]["headers"].items()}
        self.instance[event["requestId"]] = headers.get("x-playhouse-instance", "?")

    def game_socket(self, game_id: str, *, timeout: float = 10.0) -> str:
        """The instance of the page's open game socket on ``game_id``."""
        deadline = time.monotonic() + timeout
        while True:
            open_ones = [
                self.instance[rid]
                for rid, url in self.urls.items()
                if f"/ws/{game_id}" in url and rid in self.instance and rid not in self.closed
            ]
            if open_ones:
                return open_ones[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no open game socket on {game_id} within {timeout}s")
            self.page.wait_for_timeout(20)


def players_apart(
    cluster: Cluster, new_page: NewPage
) -> tuple[Player, Player, str, list[SocketInstances]]:
    """alice and bob (through nginx) in a Tic-tac-toe game, their game sockets on
    different instances: (alice, bob, game id, their socket trackers)."""
    pages = [new_page(), new_page()]
    sockets = [SocketInstances(page) for page in pages]
    alice = Player(pages[0], cluster.url, "alice")
    bob = Player(pages[1], cluster.url, "bob")
    game_id = start_game(alice, bob, "tictactoe")
    alice.open_game(game_id)
    bob.open_game(game_id)
    # nginx picks the instance; a reload (which resumes the game) gets another pick.
    for _ in range(20):
        if sockets[0].game_socket(game_id) != sockets[1].game_socket(game_id):
            break
        bob.page.reload()
        bob.page.wait_for_function(GAME_READY)
    where = [tracker.game_socket(game_id) for tracker in sockets]
    assert sorted(where) == ["instance-1", "instance-2"], where
    return alice, bob, game_id, sockets


def play(alice: Player, bob: Player, plan: list[tuple[Player, int]], first: int) -> None:
    for seq, (who, cell) in enumerate(plan, start=first):
        expect(who.page.locator("#turn")).to_have_text("Your turn")
        who.board().locator(f'[data-cell="{cell}"]').click()
        both(alice, bob, seq)


def test_two_players_on_different_instances_play_to_the_end_through_nginx(
    cluster: Cluster, new_page: NewPage
) -> None:
    alice, bob, game_id, sockets = players_apart(cluster, new_page)
    where = [tracker.game_socket(game_id) for tracker in sockets]
    play(alice, bob, [(alice, 0), (bob, 3), (alice, 1), (bob, 4), (alice, 2)], 1)
    expect(alice.page.locator("#result-text")).to_contain_text("You win")
    expect(bob.page.locator("#result-text")).to_contain_text(f"{alice.name} wins")
    for who in (alice, bob):
        expect(who.board().locator(".cell-taken")).to_have_count(5)
        expect(who.page.locator("#moves li")).to_have_count(5)
    # Still on different instances at the end, and the stored game agrees.
    assert [tracker.game_socket(game_id) for tracker in sockets] == where
    stored = bob.call("GET", f"/api/games/{game_id}")
    assert (stored["status"], stored["seq"], stored["result"]["winner"]) == (
        "finished",
        5,
        "alice",
    )


def test_the_page_of_a_player_whose_instance_is_killed_goes_on_on_the_other(
    cluster: Cluster, new_page: NewPage
) -> None:
    alice, bob, game_id, sockets = players_apart(cluster, new_page)
    play(alice, bob, [(alice, 0), (bob, 3)], 1)
    doomed = next(i for i in cluster.instances if i.name == sockets[0].game_socket(game_id))
    survivor = next(i for i in cluster.instances if i is not doomed)
    killed = time.monotonic()
    doomed.kill()
    # ws4redis.js reconnects by itself (back-off from 0.5 s); nginx sends it to the survivor.
    deadline = killed + 10
    while sockets[0].game_socket(game_id) != survivor.name:
        assert time.monotonic() < deadline, "alice's page did not reconnect to the survivor"
        alice.page.wait_for_timeout(20)
    expect(alice.page.locator("#connection")).to_have_text("live")
    took = time.monotonic() - killed
    print(f"MEASURE Chromium fail-over: SIGKILL → page live on {survivor.name} in {took:.2f}s")
    assert took < 5, f"the page took {took:.2f}s to come back"
    expect(alice.page.locator("#moves li")).to_have_count(2)  # resumed: nothing twice
    play(alice, bob, [(alice, 1), (bob, 4), (alice, 2)], 3)
    expect(alice.page.locator("#result-text")).to_contain_text("You win")
    expect(bob.page.locator("#result-text")).to_contain_text(f"{alice.name} wins")
    stored = bob.call("GET", f"/api/games/{game_id}")
    assert (stored["status"], stored["seq"]) == ("finished", 5)
