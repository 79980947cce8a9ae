"""Server-authoritative play: load → pure rules → one versioned write → event → publish.

Every change to a game is one conditional write on ``{_id, version}`` (retried
on a fresh load when only the version moved), so of any number of concurrent
writers exactly one wins each version, on any number of instances. An event is
acknowledged only after that write: an acknowledged move is never lost. After
it the event is appended to the log and each player is sent *their own* view
on ``user:<player>:<game_id>``; failures of those two steps are logged, never
raised — the move stands, and a client that missed a message resumes by
``seq`` (:meth:`Play.replay`).

Clocks, draw offers and absences live on the game document too; expiries are
found by :meth:`Play.expire_due` on every instance and ended by the same
conditional write, so exactly one instance ends a game.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from app.errors import BadRequest, Conflict, Forbidden, NotFound, PlayhouseError
from app.games import registry
from app.games.base import BAD_MOVE, GAME_OVER, NOT_A_PLAYER, GameRules, Invalid, Outcome
from app.pubsub import PubSub
from app.services import clocks
from app.services.event_log import EventLogWriter
from app.services.game_messages import chat_message, player_message, state_message
from app.storage.games import ChatLine, GameEvent, GameRecord, GameRepo, GameStatus

__all__ = [
    "LOBBY_FACILITY",
    "MAX_MOVE_BYTES",
    "Ack",
    "GameLimits",
    "Play",
    "Resumed",
    "Stale",
    "live_game",
]

logger = logging.getLogger(__name__)

MAX_MOVE_BYTES = 1024
MAX_REPLAY = 1000
MAX_WRITE_ATTEMPTS = 8
MAX_CACHED_GAMES = 10_000
LOG_CATCH_UP = (0.02, 0.1, 0.3)  # pauses while waiting for a gap in the event log to fill
_GAME_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # it is part of channel names
LOBBY_FACILITY = "lobby"  # live games come and go on broadcast:lobby (docs/protocol.md)


class Stale(Conflict):
    """The client's ``seq`` is not the game's; ``current`` is its fresh view."""

    code = "stale"

    def __init__(self, message: str, *, current: dict[str, Any]) -> None:
        super().__init__(message)
        self.current = current


StatusHook = Callable[[list[str], str], Awaitable[None]]
"""``await on_status(players, "in_game" | "online")`` when a game starts or ends."""

FinishHook = Callable[[GameRecord], Awaitable[None]]
"""``await on_finished(game)`` once the game's final write is stored (ratings, records).

Called by the instance that wrote the end; may run again for the same game after a
crash, so it must be idempotent (key its effects by ``game.id``)."""


@dataclass(frozen=True, slots=True)
class GameLimits:
    """Clocks and limits given to each new game."""

    clock_ms: int = 300_000
    move_ms: int = 60_000
    abandon_ms: int = 60_000
    chat_max_chars: int = 500


@dataclass(frozen=True, slots=True)
class Ack:
    """An accepted, stored event: the game is now at ``version`` and ``seq``."""

    game_id: str
    seq: int
    version: int
    result: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Resumed:
    """What a resuming client missed, as the messages it would have received live."""

    messages: list[bytes]
    seq: int
    chat: int


@dataclass(frozen=True, slots=True)
class _Change:
    """What one event does to a game (decided on a fresh load, then written)."""

    type: str
    player: str
    state: dict[str, Any]
    result: dict[str, Any] | None = None
    move: dict[str, Any] | None = None
    draw_offer: str | None = None
    moved: bool = False  # a rules move: the mover's clock restarts


Decide = Callable[[GameRecord, GameRules], _Change]


def _check_move(move: object) -> dict[str, Any]:
    """``move`` if it is a small JSON object storable in MongoDB, else BadRequest(bad_move)."""
    if not isinstance(move, dict):
        raise BadRequest("a move is a JSON object", code=BAD_MOVE)
    try:
        size = len(orjson.dumps(move))
    except TypeError:
        raise BadRequest("a move must be plain JSON", code=BAD_MOVE) from None
    if size > MAX_MOVE_BYTES:
        raise BadRequest(f"a move is at most {MAX_MOVE_BYTES} bytes of JSON", code=BAD_MOVE)
    stack: list[Any] = [move]
    while stack:  # "$" and "." in keys mean something to MongoDB
        item = stack.pop()
        if isinstance(item, dict):
            if any(k.startswith("$") or "." in k or "\0" in k for k in item):
                raise BadRequest("move keys may not contain '$', '.' or NUL", code=BAD_MOVE)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return move


def _refused(invalid: Invalid) -> BadRequest | Forbidden:
    message = invalid.message or invalid.code
    if invalid.code == NOT_A_PLAYER:
        return Forbidden(message, code=NOT_A_PLAYER)
    return BadRequest(message, code=invalid.code)


def _result(outcome: Outcome) -> dict[str, Any] | None:
    if not outcome.finished:
        return None
    return {"status": outcome.status, "winner": outcome.winner, "reason": outcome.reason}


def _ending(game: GameRecord, loser: str | None, reason: str) -> dict[str, Any]:
    """The result when ``loser`` loses (None: nobody wins) for ``reason``."""
    others = [p for p in game.players if p != loser]
    winner = others[0] if loser is not None and len(others) == 1 else None
    return {"status": "win" if winner else "draw", "winner": winner, "reason": reason}


def clean_chat(text: object, limit: int) -> str:
    """Chat text with control characters removed and spaces trimmed, or BadRequest."""
    if not isinstance(text, str):
        raise BadRequest("chat text must be a string", code="bad_chat")
    cleaned = "".join(ch for ch in text if ch.isprintable() or ch == " ").strip()
    if not cleaned or len(cleaned) > limit:
        raise BadRequest(f"a chat message is 1-{limit} characters", code="bad_chat")
    return cleaned


class Play:
    """Game use cases over a :class:`GameRepo` and a :class:`PubSub`. No Tornado, no HTTP."""

    def __init__(
        self,
        games: GameRepo,
        pubsub: PubSub,
        *,
        limits: GameLimits | None = None,
        rules: Callable[[str], GameRules | None] = registry.get,
        now: Callable[[], datetime] = lambda: datetime.now().astimezone(),
        on_status: StatusHook | None = None,
        on_finished: FinishHook | None = None,
    ) -> None:
        self._games = games
        self._pubsub = pubsub
        self.limits = limits or GameLimits()
        self._rules = rules
        self._now = now
        self._on_status = on_status
        self.on_finished = on_finished
        self._cache: dict[str, GameRecord] = {}  # last copy written here, by game id
        self._log = EventLogWriter(games.append_events)

    # -- starting and reading --------------------------------------------------------------

    async def create(
        self, game_id: str, kind: str, players: Sequence[str], seed: int
    ) -> GameRecord:
        """Start a game, or return the one already stored under ``game_id`` (idempotent).

        Raises:
            BadRequest: a malformed id, unknown kind (``unknown_game``) or wrong player count.
        """
        if not _GAME_ID.fullmatch(game_id):
            raise BadRequest("a game id is 1-64 letters, digits, '_' or '-'", code="bad_game_id")
        rules = self._rules(kind)
        if rules is None:
            raise BadRequest(f"unknown game {kind!r}", code="unknown_game")
        seats = tuple(players)
        if not rules.min_players <= len(seats) <= rules.max_players or len(set(seats)) < len(seats):
            raise BadRequest(
                f"{kind} needs {rules.min_players}-{rules.max_players} distinct players"
            )
        state = rules.setup(seats, seed)
        now = self._now()
        clock = clocks.new_clock(
            seats,
            rules.to_move(state),
            budget_ms=self.limits.clock_ms,
            move_limit_ms=self.limits.move_ms,
            now=_ms(now),
        )
        extra = {
            "clock": clock,
            "expires_at": clocks.next_deadline(clock, {}, abandon_ms=self.limits.abandon_ms),
        }
        game, inserted = await self._games.create(
            game_id=game_id, kind=kind, players=seats, seed=seed, state=state, now=now, extra=extra
        )
        if inserted:
            self._remember(game)
            await self._status(game.players, "in_game")
            await self._lobby({"type": "game_live", "game": live_game(game)})
        return game

    async def view(self, game_id: str, player: str | None) -> dict[str, Any]:
        """The ``state`` message as ``player`` sees it (a spectator's when not playing).

        Raises:
            NotFound: unknown game.
        """
        game, rules = await self._load(game_id)
        viewer = player if player in game.players else None
        return self._state(game, rules, viewer)

    async def current_game(self, player: str) -> dict[str, Any] | None:
        """``player``'s game in progress as ``{game_id, url, kind, players}``, if any."""
        game = await self._games.active_for(player)
        if game is None:
            return None
        return {
            "game_id": game.id,
            "url": f"/game/{game.id}",
            "kind": game.kind,
            "players": list(game.players),
        }

    async def events_since(
        self, game_id: str, seq: int, *, limit: int = MAX_REPLAY
    ) -> list[GameEvent]:
        """Accepted events after ``seq``, in order.

        The latest event is also stored with the game, so it is included even if
        appending it to the log failed.

        Raises:
            NotFound: unknown game.
        """
        game, _ = await self._load(game_id)
        return await self._events(game, seq, limit=limit)

    async def replay(self, game_id: str, player: str, *, since: int, chat_since: int) -> Resumed:
        """Every ``state`` after ``since`` and chat line after ``chat_since``, as sent live.

        States are rebuilt from the seed and the event log with the pure rules, so
        each carries the view ``player`` had then. The current state is always
        included when ``since`` is behind it (or 0, a first load).

        Raises:
            NotFound: unknown game.
            Forbidden: ``not_a_player``.
        """
        game, rules = await self._load(game_id)
        if player not in game.players:
            raise Forbidden("you are not playing this game", code=NOT_A_PLAYER)
        messages = []
        if since < game.seq or since == 0:
            for state in await self._history(game, rules, since):
                messages.append(orjson.dumps(state_message(state, rules, player, replay=True)))
            current = self._state(game, rules, player, replay=True)
            messages.append(orjson.dumps(current))
        lines = await self._games.chat_since(game_id, chat_since, limit=MAX_REPLAY)
        messages.extend(orjson.dumps(chat_message(line)) for line in lines)
        chat = lines[-1].n if lines else chat_since
        return Resumed(messages, game.seq, chat)

    async def close(self) -> None:
        """Write the queued event log entries (at shutdown)."""
        if not await self._log.flush(within=5.0):
            logger.error("%d game events not logged at shutdown", self._log.pending())

    # -- events --------------------------------------------------------------------------

    async def move(self, game_id: str, player: str, move: object, *, expected_seq: int) -> Ack:
        """Apply ``move`` by ``player`` to the game at ``expected_seq``.

        Raises:
            NotFound: unknown game.
            Forbidden: ``not_a_player``.
            BadRequest: ``bad_move`` (malformed, or JSON over 1 KiB), ``game_over``, or
                the rules' code (``not_your_turn``, ``illegal_move``, ...). Nothing is stored.
            Stale: the game is past ``expected_seq`` (or another move won the write);
                ``current`` is the player's fresh view to retry from.
        """
        checked = _check_move(move)

        def decide(game: GameRecord, rules: GameRules) -> _Change:
            self._check_turn_taker(game, player)
            if expected_seq != game.seq:
                current = self._state(game, rules, player)
                raise Stale("the game has moved on", current=current)
            state = rules.apply(game.state, player, checked)
            if isinstance(state, Invalid):
                raise _refused(state)
            result = _result(rules.outcome(state))
            return _Change("move", player, state, result, checked, moved=True)

        return await self._update(game_id, decide)

    async def resign(self, game_id: str, player: str) -> Ack:
        """End the game: ``player`` loses, the other player (if one) wins.

        Raises:
            NotFound, Forbidden (``not_a_player``), BadRequest (``game_over``).
        """

        def decide(game: GameRecord, rules: GameRules) -> _Change:
            self._check_turn_taker(game, player)
            return self._finish(game, "resign", player, _ending(game, player, "resigned"))

        return await self._update(game_id, decide)

    async def offer_draw(self, game_id: str, player: str) -> Ack:
        """Offer a draw; if the other player has already offered one, it is agreed.

        Raises:
            NotFound, Forbidden, BadRequest (``game_over``, ``draw_offered``).
        """

        def decide(game: GameRecord, rules: GameRules) -> _Change:
            self._check_turn_taker(game, player)
            if game.draw_offer == player:
                raise BadRequest("you have already offered a draw", code="draw_offered")
            if game.draw_offer is not None:
                return self._finish(game, "accept_draw", player, _ending(game, None, "agreed"))
            return _Change("offer_draw", player, game.state, draw_offer=player)

        return await self._update(game_id, decide)

    async def answer_draw(self, game_id: str, player: str, *, accept: bool) -> Ack:
        """Accept or decline the other player's draw offer.

        Raises:
            NotFound, Forbidden, BadRequest (``game_over``, ``no_draw_offer``).
        """

        def decide(game: GameRecord, rules: GameRules) -> _Change:
            self._check_turn_taker(game, player)
            if game.draw_offer is None or game.draw_offer == player:
                raise BadRequest("there is no draw offer to answer", code="no_draw_offer")
            if accept:
                return self._finish(game, "accept_draw", player, _ending(game, None, "agreed"))
            return _Change("decline_draw", player, game.state)

        return await self._update(game_id, decide)

    async def chat(self, game_id: str, player: str, text: object) -> ChatLine:
        """Store and send a chat line (also after the game ended).

        Raises:
            NotFound, Forbidden (``not_a_player``), BadRequest (``bad_chat``).
        """
        cleaned = clean_chat(text, self.limits.chat_max_chars)
        game, _ = await self._load(game_id)
        if player not in game.players:
            raise Forbidden("you are not playing this game", code=NOT_A_PLAYER)
        line = await self._games.add_chat(game_id, player, cleaned, self._now())
        await self._send(game, chat_message(line), game.players)
        return line

    # -- absence and expiry ---------------------------------------------------------------

    async def set_away(self, game_id: str, player: str, *, away: bool) -> None:
        """Record that ``player``'s game socket closed (or opened again).

        An absence longer than ``abandon_ms`` loses the game (see :meth:`expire_due`).
        Nothing happens for a finished game or a non-player.
        """
        for _ in range(MAX_WRITE_ATTEMPTS):
            game, _rules = await self._load(game_id)
            if game.status is GameStatus.FINISHED or player not in game.players:
                return
            if (player in game.away) == away:
                return
            now = self._now_ms()
            absent = dict(game.away)
            if away:
                absent[player] = now
            else:
                absent.pop(player, None)
            deadline = clocks.next_deadline(game.clock, absent, abandon_ms=self.limits.abandon_ms)
            fields = {"away": absent, "expires_at": deadline}
            saved = await self._games.save(
                game_id, expected_version=game.version, fields=fields, event=None
            )
            if saved is not None:
                self._remember(saved)
                forfeit = self.limits.abandon_ms if away else None
                message = player_message(game_id, player, connected=not away, forfeit_ms=forfeit)
                others = [p for p in game.players if p != player]
                await self._send(saved, message, others)
                return
        logger.warning("game %s: absence of %s not recorded (busy)", game_id, player)

    async def expire_due(self, *, everywhere: bool = True, limit: int = 200) -> int:
        """End the games whose clock or absence deadline has passed; returns how many.

        ``everywhere=False`` looks only at games this instance wrote last (its cache,
        no query: cheap enough for every second); ``True`` asks the database, which
        also finds the games of an instance that died. Safe on every instance at
        once: each game is ended by one conditional write.
        """
        now = self._now_ms()
        if everywhere:
            due = await self._games.due(now_ms=now, limit=limit)
        else:
            ids = [g.id for g in self._cache.values() if g.expires_at and g.expires_at <= now]
            due = [g for g in [await self._games.get(i) for i in ids[:limit]] if g]
        ended = 0
        for game in due:
            try:
                ended += await self._expire(game)
            except PlayhouseError as error:
                logger.warning("game %s not expired: %s", game.id, error)
        return ended

    async def _expire(self, game: GameRecord) -> int:
        rules = self._rules(game.kind)
        if rules is None or game.status is not GameStatus.ACTIVE:
            self._cache.pop(game.id, None)
            return 0
        now = self._now_ms()
        limits = self.limits
        found = clocks.expiry(
            game.clock, game.away, game.players, abandon_ms=limits.abandon_ms, now=now
        )
        if found is None:
            deadline = clocks.next_deadline(game.clock, game.away, abandon_ms=limits.abandon_ms)
            if game.expires_at != deadline:  # a stored deadline out of date: correct it
                saved = await self._games.save(
                    game.id,
                    expected_version=game.version,
                    fields={"expires_at": deadline},
                    event=None,
                )
                game = saved or game
            if game.id in self._cache:
                self._remember(game)  # our copy was behind another instance's writes
            return 0
        kind = "timeout" if found.reason == "timeout" else "abandon"
        change = self._finish(
            game, kind, found.loser or "", _ending(game, found.loser, found.reason)
        )
        ack = await self._write(game, rules, change)
        return 1 if ack is not None else 0

    # -- the write path -------------------------------------------------------------------

    async def _update(self, game_id: str, decide: Decide) -> Ack:
        """Decide and write; on a lost write reload and decide again, so ``decide``
        sees every concurrent event.

        The first attempt decides on this instance's last written copy of the game
        when it has one (saving a read on the hot path). The conditional write makes
        that safe: if another writer moved the game on, the write fails and the game
        is reloaded. A refusal decided on a cached copy is confirmed on a fresh load.
        """
        cached = self._cache.get(game_id)
        for _ in range(MAX_WRITE_ATTEMPTS):
            if cached is not None:
                game, rules = cached, self._rules(cached.kind)
                assert rules is not None, "cached games have known kinds"
                try:
                    change = decide(game, rules)
                except PlayhouseError:
                    cached = None
                    continue
            else:
                game, rules = await self._load(game_id)
                change = decide(game, rules)
            cached = None
            ack = await self._write(game, rules, change)
            if ack is not None:
                return ack
        raise Conflict("the game is too busy; try again", code="busy")

    async def _write(self, game: GameRecord, rules: GameRules, change: _Change) -> Ack | None:
        """One conditional write of ``change``; None when another writer won the version."""
        now = self._now()
        now_ms = _ms(now)
        finished = change.result is not None
        to_move = () if finished else rules.to_move(change.state)
        clock = game.clock
        if clock is not None:
            mover = change.player if change.moved else None
            clock = clocks.tick(clock, mover=mover, to_move=to_move, now=now_ms)
        away = {} if finished else game.away
        deadline = None
        if not finished:
            deadline = clocks.next_deadline(clock, away, abandon_ms=self.limits.abandon_ms)
        event = GameEvent(
            game.id,
            game.seq + 1,
            change.player,
            change.type,
            change.move,
            game.version + 1,
            now,
            change.result,
        )
        fields = {
            "state": change.state,
            "status": (GameStatus.FINISHED if finished else GameStatus.ACTIVE).value,
            "result": change.result,
            "draw_offer": None if finished else change.draw_offer,
            "clock": clock,
            "away": away,
            "expires_at": deadline,
        }
        if finished:
            fields["finish_done"] = False  # until the finish hook (ratings) has run
        saved = await self._games.save(
            game.id, expected_version=game.version, fields=fields, event=event
        )
        if saved is None:
            self._cache.pop(game.id, None)
            return None
        self._remember(saved)
        # Written: from here on nothing may fail the acknowledged event. The log append
        # and the publishes do not depend on each other, so they overlap.
        # The log copy follows in a batch; the game holds it already. The previous event
        # rides along in case its writer died before logging it.
        self._log.add(event, previous=game.last)
        await self._announce(saved, rules, now_ms)
        if finished:
            await self._status(saved.players, "online")
            await self._lobby({"type": "game_over", "game_id": saved.id})
            await self._keep_moves(saved)
            await self._finished(saved)
        return Ack(saved.id, saved.seq, saved.version, saved.result)

    def _finish(self, game: GameRecord, kind: str, player: str, result: dict[str, Any]) -> _Change:
        # The rules see the end too (state["result"], the games' shared convention), so
        # views reveal what a finished game reveals, e.g. both Bingo boards.
        return _Change(kind, player, {**game.state, "result": result}, result)

    # -- helpers --------------------------------------------------------------------------

    def _remember(self, game: GameRecord) -> None:
        """Keep the copy this instance just wrote (most recently used last, bounded)."""
        cache = self._cache
        cache.pop(game.id, None)
        if game.status is GameStatus.ACTIVE:
            cache[game.id] = game
            if len(cache) > MAX_CACHED_GAMES:
                del cache[next(iter(cache))]

    async def _load(self, game_id: str) -> tuple[GameRecord, GameRules]:
        game = await self._games.get(game_id)
        if game is None:
            raise NotFound(f"no game {game_id!r}")
        rules = self._rules(game.kind)
        if rules is None:  # a kind removed from the registry: the stored game is unusable
            raise NotFound(f"game {game_id!r} is of an unknown kind {game.kind!r}")
        return game, rules

    @staticmethod
    def _check_turn_taker(game: GameRecord, player: str) -> None:
        if player not in game.players:
            raise Forbidden("you are not playing this game", code=NOT_A_PLAYER)
        if game.status is GameStatus.FINISHED:
            raise BadRequest("the game is over", code=GAME_OVER)

    def _state(
        self,
        game: GameRecord,
        rules: GameRules,
        viewer: str | None,
        *,
        now_ms: int | None = None,
        replay: bool = False,
    ) -> dict[str, Any]:
        """The current ``state`` message for ``viewer``, with clock and absences."""
        return state_message(
            game,
            rules,
            viewer,
            now_ms=self._now_ms() if now_ms is None else now_ms,
            abandon_ms=self.limits.abandon_ms,
            replay=replay,
        )

    def _now_ms(self) -> int:
        return _ms(self._now())

    async def _events(self, game: GameRecord, seq: int, *, limit: int) -> list[GameEvent]:
        await self._log.flush(within=1.0)  # this instance's queued events first
        events = await self._games.events_since(game.id, seq, limit=limit)
        last = game.last
        missing = last is not None and last.seq > seq and all(e.seq != last.seq for e in events)
        if last is not None and missing and len(events) < limit:
            events.append(last)
        return events

    async def _history(self, game: GameRecord, rules: GameRules, since: int) -> list[GameRecord]:
        """The game as it stood after each event from ``since + 1`` to before the latest.

        Empty when the log is incomplete (an append that failed): the client then
        gets the current state only.
        """
        if game.seq - since <= 1:
            return []
        wanted = list(range(1, game.seq + 1))
        for pause in LOG_CATCH_UP:  # another instance's batch may still be on its way
            events = await self._events(game, 0, limit=MAX_REPLAY)
            if [e.seq for e in events] == wanted:
                break
            await asyncio.sleep(pause)
        else:
            logger.warning("game %s: event log incomplete; replaying the latest state", game.id)
            return []
        state = rules.setup(game.players, game.seed)
        draw_offer: str | None = None
        past = []
        for event in events[:-1]:
            if event.type == "move" and event.move is not None:
                after = rules.apply(state, event.player, event.move)
                if isinstance(after, Invalid):
                    logger.error("game %s: event %d does not replay", game.id, event.seq)
                    return []
                state = after
            draw_offer = event.player if event.type == "offer_draw" else None
            if event.seq > since:
                past.append(
                    dataclasses.replace(
                        game,
                        state=state,
                        seq=event.seq,
                        version=event.version,
                        status=GameStatus.ACTIVE,
                        result=None,
                        last=event,
                        clock=None,
                        away={},
                        draw_offer=draw_offer,
                    )
                )
        return past

    async def _keep_moves(self, game: GameRecord) -> None:
        """Store the finished game's move list with it (best effort: the log has it too)."""
        try:
            events = await self._events(game, 0, limit=MAX_REPLAY)
            moves = [
                {"seq": e.seq, "player": e.player, "type": e.type, "move": e.move, "at": e.at}
                for e in events
            ]
            await self._games.store_moves(game.id, moves)
        except Exception:
            logger.exception("game %s: move list not stored", game.id)

    async def _finished(self, game: GameRecord) -> None:
        """Run the finish hook (best effort: the finished game stands whatever happens)."""
        if self.on_finished is None:
            return
        try:
            await self.on_finished(game)
            await self._games.mark_finish_done(game.id)
        except Exception:
            logger.exception("game %s: finish hook failed (the sweeper retries it)", game.id)

    async def retry_finish_hooks(self, *, limit: int = 50) -> int:
        """Complete finished games whose finishing never did (the hook failed, or the
        instance died first): log the final event, keep the move list, run the hook.
        All idempotent (ratings apply each game once)."""
        if self.on_finished is None:
            return 0
        pending = await self._games.finish_pending(limit=limit)
        for game in pending:
            # Its instance may have died before logging the final event (no later writer
            # will) or keeping the move list: both first, then the hook.
            if game.last is not None:
                self._log.add(game.last)
            await self._keep_moves(game)
            await self._finished(game)
        return len(pending)

    async def _status(self, players: Sequence[str], status: str) -> None:
        """Tell presence (best effort: a stored game stands whatever happens here)."""
        if self._on_status is None:
            return
        try:
            await self._on_status(list(players), status)
        except Exception:
            logger.exception("presence not updated for %s", players)

    async def _announce(self, game: GameRecord, rules: GameRules, now_ms: int) -> None:
        """Send each player their own view, on their own channel only, and spectators
        the public view on the game's broadcast channel (one broker round trip)."""
        names = self._pubsub.names
        messages = [
            (
                names.audience(game.id, users=[player]),
                orjson.dumps(self._state(game, rules, player, now_ms=now_ms)),
            )
            for player in game.players
        ]
        public = orjson.dumps(self._state(game, rules, None, now_ms=now_ms))
        messages.append((names.audience(game.id, broadcast=True), public))
        try:
            await self._pubsub.publish_many(messages)  # one Redis round trip per move
        except Exception:
            logger.exception("game %s: state %d not sent", game.id, game.seq)

    async def announce_watchers(self, game_id: str, count: int) -> None:
        """Send ``{"type":"watchers","game_id","count"}`` to the players and spectators
        of ``game_id`` (best effort: logged, never raised)."""
        try:
            game = self._cache.get(game_id) or await self._games.get(game_id)
        except PlayhouseError as error:
            logger.warning("game %s: watchers not sent: %s", game_id, error)
            return
        if game is None:
            return
        payload = orjson.dumps({"type": "watchers", "game_id": game_id, "count": count})
        await asyncio.gather(
            *(self._publish(game_id, "watchers", payload, p) for p in (*game.players, None))
        )

    async def _lobby(self, message: dict[str, Any]) -> None:
        """Publish a live-games diff on ``broadcast:lobby`` (best effort)."""
        try:
            publisher = self._pubsub.publisher(LOBBY_FACILITY, broadcast=True)
            await publisher.publish(orjson.dumps(message), expire=0)
        except Exception:
            logger.exception("lobby not told: %s", message.get("type"))

    async def _send(self, game: GameRecord, message: dict[str, Any], to: Sequence[str]) -> None:
        payload = orjson.dumps(message)
        await asyncio.gather(*(self._publish(game.id, message["type"], payload, p) for p in to))

    async def _publish(self, game_id: str, kind: str, payload: bytes, player: str | None) -> None:
        """Publish to ``player``'s channel of the game, or to its spectators' (None)."""
        if player is None:
            publisher = self._pubsub.publisher(game_id, broadcast=True)
        else:
            publisher = self._pubsub.publisher(game_id, users=[player])
        try:
            # expire=0: a game socket resumes from the event log, not a kept message.
            await publisher.publish(payload, expire=0)
        except Exception:
            logger.exception("game %s: %s not sent to %s", game_id, kind, player or "spectators")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def live_game(game: GameRecord) -> dict[str, Any]:
    """A game in the lobby's live list: ``{game_id, kind, players, url, started_at}``."""
    return {
        "game_id": game.id,
        "kind": game.kind,
        "players": list(game.players),
        "url": f"/game/{game.id}",
        "started_at": game.created_at.astimezone(UTC).isoformat(timespec="milliseconds"),
    }
