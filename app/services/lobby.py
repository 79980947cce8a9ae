"""Lobby use cases: challenge, accept (start the game), decline, cancel, expire — and tell both.

Every new challenge and every outcome goes to both players' ``user:<name>:lobby``
channel; an accept starts the game idempotently (its id is derived from the
challenge) and sends ``game_started`` to both. Notifications are best effort:
a stored outcome stands even when the broker is down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from app.errors import Conflict, Forbidden
from app.games.base import NOT_A_PLAYER
from app.pubsub import PubSub
from app.services.challenges import Challenges
from app.services.play import Play
from app.storage.challenges import Challenge

__all__ = ["LOBBY_FACILITY", "Lobby", "challenge_json", "rematch_message"]

log = logging.getLogger("playhouse.lobby")

LOBBY_FACILITY = "lobby"


def _iso(moment: datetime) -> str:
    # UTC to the millisecond, as stored: a challenge reads the same when it is
    # created and when it is listed later from MongoDB.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def challenge_json(challenge: Challenge) -> dict[str, Any]:
    """The wire form of a challenge (API answers and lobby socket messages)."""
    return {
        "id": challenge.id,
        "from": challenge.from_user,
        "to": challenge.to_user,
        "game": challenge.game,
        "status": challenge.status.value,
        "created_at": _iso(challenge.created_at),
        "expires_at": _iso(challenge.expires_at),
        "game_id": challenge.game_id,
        **({"rematch_of": challenge.rematch_of} if challenge.rematch_of else {}),
        **({"seats": list(challenge.seats)} if challenge.seats else {}),
    }


def rematch_message(message: dict[str, Any]) -> dict[str, Any]:
    """The game-page form of a lobby message about a rematch challenge."""
    kind = message["type"]
    if kind == "game_started":
        return {"type": "rematch", "game_id": message["game_id"], "url": message["url"]}
    body = {k: v for k, v in message.items() if k != "type"}
    return {"type": "rematch_offer" if kind == "challenge" else "rematch_update", "challenge": body}


class Lobby:
    """Challenges plus game creation plus the lobby notifications."""

    def __init__(
        self,
        challenges: Challenges,
        play: Play,
        pubsub: PubSub,
        *,
        find_user: Callable[[str], Awaitable[str | None]],
    ) -> None:
        self._challenges = challenges
        self._play = play
        self._pubsub = pubsub
        self._find_user = find_user

    async def challenge(self, me: str, to: str, game: str) -> dict[str, Any]:
        """Create a challenge (``to`` in any letter case) and tell both players."""
        to = await self._find_user(to) or to
        challenge = await self._challenges.create(me, to, game)
        body = challenge_json(challenge)
        await self._notify(challenge, {"type": "challenge", **body})
        return body

    async def rematch(self, game_id: str, me: str) -> dict[str, Any]:
        """Offer ``me``'s opponent in finished game ``game_id`` a rematch, seats swapped.

        The player who moved first (seat 0) moves second in the new game.

        Raises:
            NotFound: unknown game.
            Forbidden: ``me`` did not play it (code ``not_a_player``).
            Conflict: the game is not over (``game_active``); the opponent is
                offline or in a game (``unavailable``).
            ChallengePending: the pair already has a pending challenge of this kind
                (either player's rematch offer, for one): ``challenge_id`` names it.
        """
        game = await self._play.view(game_id, me)
        players = [str(p) for p in game["players"]]
        if me not in players:
            raise Forbidden("you did not play this game", code=NOT_A_PLAYER)
        if game["status"] != "finished":
            raise Conflict("the game is still being played", code="game_active")
        if len(players) != 2:
            raise Conflict("a rematch is for two-player games", code="not_two_players")
        opponent = players[1] if players[0] == me else players[0]
        challenge = await self._challenges.create(
            me, opponent, str(game["kind"]), rematch_of=game_id, seats=players[::-1]
        )
        body = challenge_json(challenge)
        await self._notify(challenge, {"type": "challenge", **body})
        return body

    async def find(self, challenge_id: str) -> dict[str, Any] | None:
        """The wire form of a challenge, if there is one with this id."""
        challenge = await self._challenges.get(challenge_id)
        return challenge_json(challenge) if challenge is not None else None

    async def accept(self, challenge_id: str, by: str) -> dict[str, Any]:
        """Accept, start the game under the derived id, announce ``game_started``.

        Repeating it (double click, second tab, another instance) returns the
        same game and creates nothing new.
        """
        challenge = await self._challenges.accept(challenge_id, by)
        game_id = challenge.game_id
        assert game_id is not None, "an accepted challenge always has a game id"
        players = list(challenge.seats or (challenge.from_user, challenge.to_user))
        await self._play.create(game_id, challenge.game, players, int(game_id[:8], 16))
        await self._notify(challenge, {"type": "challenge_update", **challenge_json(challenge)})
        started = {"type": "game_started", "game_id": game_id, "url": f"/game/{game_id}"}
        await self._notify(challenge, started)
        return started

    async def decline(self, challenge_id: str, by: str) -> dict[str, Any]:
        return await self._settle(await self._challenges.decline(challenge_id, by))

    async def cancel(self, challenge_id: str, by: str) -> dict[str, Any]:
        return await self._settle(await self._challenges.cancel(challenge_id, by))

    async def pending(self, user: str) -> dict[str, list[dict[str, Any]]]:
        """``{"incoming": [...], "outgoing": [...]}``: ``user``'s open challenges, newest first."""
        found = await self._challenges.pending_for(user)
        return {
            "incoming": [challenge_json(c) for c in found.incoming],
            "outgoing": [challenge_json(c) for c in found.outgoing],
        }

    async def expire_due(self, now: datetime | None = None, *, everywhere: bool = True) -> int:
        """Expire pending challenges past their deadline and tell both players; for a sweeper.

        Safe on every instance at once: only the instance whose conditional write
        expired a challenge gets it back, so each expiry is announced once.

        Returns:
            How many challenges this call expired.
        """
        expired = await self._challenges.expire_due(now, everywhere=everywhere)
        for challenge in expired:
            await self._notify(challenge, {"type": "challenge_update", **challenge_json(challenge)})
        return len(expired)

    async def _settle(self, challenge: Challenge) -> dict[str, Any]:
        body = challenge_json(challenge)
        await self._notify(challenge, {"type": "challenge_update", **body})
        return body

    async def _notify(self, challenge: Challenge, message: dict[str, Any]) -> None:
        users = [challenge.from_user, challenge.to_user]
        try:
            # expire=0: a lobby opened later must not replay a stale challenge or game.
            await self._pubsub.publisher(LOBBY_FACILITY, users=users).publish(
                orjson.dumps(message), expire=0
            )
        except Exception:
            log.exception("challenge %s: %s not published", challenge.id, message["type"])
        if challenge.rematch_of is None:
            return
        try:
            # The finished game's page listens on its own channel only.
            await self._pubsub.publisher(challenge.rematch_of, users=users).publish(
                orjson.dumps(rematch_message(message)), expire=0
            )
        except Exception:
            log.exception("rematch %s: %s not published", challenge.id, message["type"])
