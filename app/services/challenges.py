"""Challenges between two players: create, accept, decline, cancel, expire. No HTTP.

Race safety rests on storage, not on this process: at most one pending
challenge per pair and game (either direction) is a unique pending key, and
each transition out of ``pending`` is one conditional ``find_one_and_update``,
so double clicks, two tabs and two instances end in exactly one outcome.

Contract with the caller (the lead wires this in later): :meth:`Challenges.accept`
returns the accepted :class:`Challenge` whose ``game_id`` is derived from the
challenge id (:func:`game_id_for`); this service creates no game document and
publishes nothing. The caller creates the game under that id (idempotently:
a duplicate insert means another instance already did) and publishes
``game_started`` to both players.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from app.errors import Conflict, Forbidden, Invalid, NotFound, PlayhouseError
from app.games import registry
from app.storage.challenges import Challenge, ChallengeRepo, ChallengeStatus, PendingChallenges

__all__ = [
    "DEFAULT_TTL",
    "MAX_LISTED",
    "ChallengePending",
    "Challenges",
    "game_id_for",
    "pending_key",
]

DEFAULT_TTL = 60.0
"""Seconds a challenge stays open."""

MAX_LISTED = 50
"""Most challenges :meth:`Challenges.pending_for` lists each way."""

UserCheck = Callable[[str], Awaitable[bool]]


def game_id_for(challenge_id: str) -> str:
    """The id of the game an accepted challenge starts: the same on every instance."""
    return hashlib.sha256(f"game:{challenge_id}".encode()).hexdigest()[:16]


def pending_key(a: str, b: str, game: str) -> str:
    """The pair's key, the same whichever of ``a`` and ``b`` challenges."""
    low, high = sorted((a.casefold(), b.casefold()))
    return f"{low}|{high}|{game}"


class ChallengePending(Conflict):
    """The pair already has a pending challenge for this game; ``challenge_id`` names it."""

    code = "challenge_pending"

    def __init__(self, message: str, *, challenge_id: str) -> None:
        super().__init__(message)
        self.challenge_id = challenge_id


class Challenges:
    """The challenge use cases over a :class:`ChallengeRepo`.

    Args:
        repo: the storage.
        user_exists: ``await user_exists(name)`` is True for a registered user.
        is_available: ``await is_available(name)`` is False when the user is
            offline or already in a game (presence plugs in here).
        ttl: seconds before a pending challenge expires.
        now: the clock; must return timezone-aware datetimes.
    """

    def __init__(
        self,
        repo: ChallengeRepo,
        *,
        user_exists: UserCheck,
        is_available: UserCheck,
        ttl: float = DEFAULT_TTL,
        now: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        self._repo = repo
        self._user_exists = user_exists
        self._is_available = is_available
        self._ttl = timedelta(seconds=ttl)
        self._now = now
        # Pending challenges created on this instance, with their deadlines.
        self._created_here: dict[str, datetime] = {}

    async def create(
        self,
        from_user: str,
        to_user: str,
        game: str,
        *,
        rematch_of: str | None = None,
        seats: Sequence[str] | None = None,
    ) -> Challenge:
        """Challenge ``to_user`` to a game of kind ``game``.

        A rematch passes the finished game's id as ``rematch_of`` and the new seat
        order as ``seats`` (both players, any order); it shares the pair's pending
        key with ordinary challenges of the same kind.

        Raises:
            Invalid: ``to`` is the challenger (field ``to``); unknown or not a
                two-player game (field ``game``).
            NotFound: ``to_user`` is not a registered user (code ``unknown_user``).
            Conflict: ``to_user`` is offline or in a game (code ``unavailable``).
            ChallengePending: a challenge of this pair and game is pending, in
                either direction (code ``challenge_pending``).
        """
        if from_user.casefold() == to_user.casefold():
            raise Invalid("to", "you cannot challenge yourself")
        rules = registry.get(game)
        if rules is None:
            raise Invalid("game", f"unknown game {game!r}")
        if not rules.min_players <= 2 <= rules.max_players:
            raise Invalid("game", f"{rules.title} is not a two-player game")
        if not await self._user_exists(to_user):
            raise NotFound(f"no user named {to_user!r}", code="unknown_user")
        if not await self._is_available(to_user):
            raise Conflict(f"{to_user} is offline or in a game", code="player_unavailable")
        if seats is not None and sorted(seats) != sorted((from_user, to_user)):
            raise Invalid("seats", "the seats are the two players'")
        now = self._now()
        challenge = Challenge(
            id=secrets.token_hex(12),
            from_user=from_user,
            to_user=to_user,
            game=game,
            status=ChallengeStatus.PENDING,
            created_at=now,
            expires_at=now + self._ttl,
            rematch_of=rematch_of,
            seats=tuple(seats) if seats is not None else None,
        )
        key = pending_key(from_user, to_user, game)
        await self._repo.insert(challenge)
        try:
            await self._claim(key, challenge, now=now)
        except Exception:
            # Never visible to anyone (no key points at it); a failed removal leaves a
            # pending document without key, which the sweeper expires.
            await self._repo.remove(challenge.id)
            raise
        self._created_here[challenge.id] = challenge.expires_at
        return challenge

    async def accept(self, challenge_id: str, by: str) -> Challenge:
        """Accept as the challenged player; returns the challenge with its ``game_id``.

        Idempotent: accepting an already accepted challenge again returns it
        unchanged (same ``game_id``), so a double click or a second tab is harmless.

        Raises:
            NotFound: no such challenge.
            Forbidden: ``by`` is not the challenged player (code ``not_yours``).
            Conflict: expired (code ``expired``) or declined/cancelled (``not_pending``).
        """
        challenge = await self._mine(challenge_id, by, recipient=True)
        won = await self._repo.transition(
            challenge.id,
            ChallengeStatus.ACCEPTED,
            now=self._now(),
            game_id=game_id_for(challenge.id),
        )
        return await self._settle(challenge, won, ChallengeStatus.ACCEPTED)

    async def decline(self, challenge_id: str, by: str) -> Challenge:
        """Decline as the challenged player; repeating it is harmless. Raises as accept."""
        challenge = await self._mine(challenge_id, by, recipient=True)
        won = await self._repo.transition(challenge.id, ChallengeStatus.DECLINED, now=self._now())
        return await self._settle(challenge, won, ChallengeStatus.DECLINED)

    async def cancel(self, challenge_id: str, by: str) -> Challenge:
        """Withdraw as the challenger; repeating it is harmless. Raises as accept."""
        challenge = await self._mine(challenge_id, by, recipient=False)
        won = await self._repo.transition(challenge.id, ChallengeStatus.CANCELLED, now=self._now())
        return await self._settle(challenge, won, ChallengeStatus.CANCELLED)

    async def get(self, challenge_id: str) -> Challenge | None:
        return await self._repo.get(challenge_id)

    async def pending_for(self, user: str, *, limit: int = MAX_LISTED) -> PendingChallenges:
        """``user``'s open challenges (incoming and outgoing), newest first.

        Only pending challenges not yet expired by the clock: one past its deadline
        is left out even before the sweeper marks it expired. ``user`` is the
        canonical spelling (the signed-in user's).
        """
        return await self._repo.pending_for(user, now=self._now(), limit=limit)

    async def expire_due(
        self, now: datetime | None = None, *, everywhere: bool = True, limit: int = 500
    ) -> list[Challenge]:
        """Expire pending challenges past their deadline; for a periodic sweeper.

        ``everywhere=False`` looks only at challenges created on this instance (no
        query: cheap enough for every second); ``True`` asks the database, which also
        finds those of an instance that died. Safe on every instance at once: each
        challenge is expired by exactly one conditional write, and only the winner's
        challenge is returned.
        """
        now = now or self._now()
        if everywhere:
            due = [c.id for c in await self._repo.due(now=now, limit=limit)]
        else:
            due = [cid for cid, at in self._created_here.items() if at <= now][:limit]
        expired: list[Challenge] = []
        for challenge_id in due:
            self._created_here.pop(challenge_id, None)
            try:
                done = await self._repo.expire(challenge_id, now=now)
                if done is not None:
                    expired.append(done)
                    await self._release(done)  # a stale key is repaired by the next create
            except PlayhouseError:
                if not expired:
                    raise
                break  # storage failed midway: return what was expired, so it is announced
        return expired

    async def _claim(self, key: str, challenge: Challenge, *, now: datetime) -> None:
        """Take the pair's pending key, clearing one stale holder at most once."""
        for attempt in range(2):
            holder_id = await self._repo.claim_pending(key, challenge.id)
            if holder_id is None:
                return
            holder = await self._repo.get(holder_id) if holder_id else None
            if holder is not None and holder.status is ChallengeStatus.PENDING:
                if holder.expires_at > now:
                    raise _pending_error(holder, challenge)
                await self._repo.expire(holder.id, now=now)
            if attempt == 0 and holder_id:
                # Expired or left pending without releasing (a crash between the two
                # writes): the key is stale. Release it only if it still points there.
                await self._repo.release_pending(key, holder_id)
        raise ChallengePending(
            "a challenge between you is being settled; try again",
            challenge_id=holder_id or "",
        )

    async def _mine(self, challenge_id: str, by: str, *, recipient: bool) -> Challenge:
        """The challenge, if ``by`` is its recipient (or, for False, its sender)."""
        challenge = await self._repo.get(challenge_id)
        if challenge is None:
            raise NotFound(f"no challenge {challenge_id!r}", code="not_found")
        owner = challenge.to_user if recipient else challenge.from_user
        if owner.casefold() != by.casefold():
            raise Forbidden("this challenge is not yours to answer", code="not_yours")
        return challenge

    async def _settle(
        self, before: Challenge, won: Challenge | None, wanted: ChallengeStatus
    ) -> Challenge:
        """Finish a transition: release the key if we won, else explain the loss."""
        if won is not None:
            await self._release(won)
            return won
        current = await self._repo.get(before.id) or before
        if current.status is wanted:
            await self._release(current)  # idempotent repair if the winner crashed
            return current
        if current.status is ChallengeStatus.PENDING:
            expired = await self._repo.expire(current.id, now=self._now())
            if expired is not None:
                await self._release(expired)
            raise Conflict("this challenge has expired", code="expired")
        await self._release(current)
        if current.status is ChallengeStatus.EXPIRED:
            raise Conflict("this challenge has expired", code="expired")
        raise Conflict(f"this challenge was already {current.status.value}", code="not_pending")

    async def _release(self, challenge: Challenge) -> None:
        self._created_here.pop(challenge.id, None)
        key = pending_key(challenge.from_user, challenge.to_user, challenge.game)
        await self._repo.release_pending(key, challenge.id)


def _pending_error(holder: Challenge, mine: Challenge) -> ChallengePending:
    rules = registry.get(holder.game)
    game = rules.title if rules is not None else holder.game
    if holder.from_user.casefold() == mine.to_user.casefold():
        message = (
            f"{holder.from_user} has already challenged you to {game}; "
            "accept that challenge instead"
        )
    else:
        message = f"you already challenged {holder.to_user} to {game}; wait for an answer"
    return ChallengePending(message, challenge_id=holder.id)
