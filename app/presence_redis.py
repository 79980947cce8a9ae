"""RedisPresence: the :class:`~app.presence.Presence` contract across instances.

Keys (``P`` is the ws4redis prefix plus ``":"``, or empty):

- ``{P}presence:instances``: sorted set of instance ids scored by heartbeat
  expiry (ms, Redis server clock, so instances need not agree on time);
- ``{P}presence:<instance_id>``: hash user → status of that instance's users.

Every operation is one Lua script, so Redis serialises them: each script first
reaps expired instances (``ZREM`` then drop their hash, inside the script), then
computes the user's union status before and after its change. A transition is
therefore reported by exactly one script run, on exactly one instance, even
when two survivors notice a dead instance at the same time.

Redis outages never raise into callers: the failure is logged, local counts
stay authoritative, writes are skipped, and the next successful heartbeat
re-mirrors the whole local state (publishing whatever changed meanwhile). An
instance reaped while cut off notices on its next heartbeat and re-mirrors too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.presence import ChangeHandler, PresenceCore, Sleep, strongest
from app.pubsub import PubSub

__all__ = ["RedisPresence"]

log = logging.getLogger("playhouse.presence")

_PRELUDE = """
local zkey, hpfx, me, ttl = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rank = {online = 1, in_game = 2}
local diffs = {}
local function best(a, b)
  if not a or (b and rank[b] > rank[a]) then return b end
  return a
end
local function union(user)
  local s = false
  for _, id in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do
    s = best(s, redis.call('HGET', hpfx .. id, user))
  end
  return s
end
local function note(user, before, after)
  if before ~= after then
    diffs[#diffs + 1] = user
    diffs[#diffs + 1] = after or 'offline'
  end
end
local function drop(id)
  if redis.call('ZREM', zkey, id) == 0 then return end  -- the claim
  local key = hpfx .. id
  local flat = redis.call('HGETALL', key)
  redis.call('DEL', key)
  for i = 1, #flat, 2 do
    local after = union(flat[i])
    note(flat[i], best(flat[i + 1], after), after)
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', zkey, '-inf', now)) do drop(id) end
local alive = redis.call('ZSCORE', zkey, me) ~= false
local function touch()
  redis.call('ZADD', zkey, now + ttl, me)
  redis.call('PEXPIRE', hpfx .. me, ttl * 4)
end
"""

_SET = """
if not alive then return {1, diffs} end
local user, status = ARGV[4], ARGV[5]
local before = union(user)
if status == '' then
  redis.call('HDEL', hpfx .. me, user)
else
  redis.call('HSET', hpfx .. me, user, status)
end
touch()
note(user, before, union(user))
return {0, diffs}
"""

_HEARTBEAT = "if not alive then return {1, diffs} end touch() return {0, diffs}"

_MIRROR = """
local key = hpfx .. me
local users, seen = {}, {}
for _, u in ipairs(redis.call('HKEYS', key)) do
  if not seen[u] then seen[u] = true; users[#users + 1] = u end
end
for i = 4, #ARGV, 2 do
  if not seen[ARGV[i]] then seen[ARGV[i]] = true; users[#users + 1] = ARGV[i] end
end
local before = {}
for i, u in ipairs(users) do before[i] = union(u) end
redis.call('DEL', key)
for i = 4, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
touch()
for i, u in ipairs(users) do note(u, before[i], union(u)) end
return {0, diffs}
"""

_CLOSE = "drop(me) return {0, diffs}"

_ONLINE = """
local merged = {}
for _, id in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do
  local flat = redis.call('HGETALL', hpfx .. id)
  for i = 1, #flat, 2 do merged[flat[i]] = best(merged[flat[i]], flat[i + 1]) end
end
local out = {}
for u, s in pairs(merged) do out[#out + 1] = u; out[#out + 1] = s end
return {alive and 0 or 1, diffs, out}
"""

_FAILURES = (RedisError, OSError, ConnectionError, TimeoutError)


def _pairs(flat: list[Any]) -> list[tuple[str, str]]:
    text = [x.decode() if isinstance(x, bytes) else str(x) for x in flat]
    return list(zip(text[::2], text[1::2], strict=True))


class RedisPresence(PresenceCore):
    """Presence mirrored to Redis; see the module docstring for the design.

    Args:
        pubsub: diffs go to its ``broadcast:lobby``; its prefix prefixes the keys.
        client: a redis-py asyncio client (e.g. ``RedisBroker.client``).
        instance_id: unique per running instance (a uuid).
        grace: seconds before a user whose last socket closed goes offline.
        heartbeat: seconds between heartbeats (and re-mirror attempts).
        ttl: seconds without heartbeat after which the instance counts as dead.
        sleep: awaited for grace periods only (heartbeats use real time,
            as TTLs are measured by the Redis server's clock).
        on_change: called with each diff this instance publishes.
    """

    def __init__(
        self,
        pubsub: PubSub,
        client: aioredis.Redis,
        *,
        instance_id: str,
        grace: float = 3.0,
        heartbeat: float = 5.0,
        ttl: float = 15.0,
        sleep: Sleep = asyncio.sleep,
        on_change: ChangeHandler | None = None,
    ) -> None:
        super().__init__(pubsub, grace=grace, sleep=sleep, on_change=on_change)
        self.instance_id = instance_id
        self._heartbeat = heartbeat
        base = pubsub.names.prefix
        self._keys = [f"{base}presence:instances"]
        self._head: list[str | int] = [f"{base}presence:", instance_id, max(1, int(ttl * 1000))]
        self._scripts = {
            name: client.register_script(_PRELUDE + body)
            for name, body in (
                ("set", _SET),
                ("heartbeat", _HEARTBEAT),
                ("mirror", _MIRROR),
                ("close", _CLOSE),
                ("online", _ONLINE),
            )
        }
        # Serialises scripts and the publishes of their diffs: one order per user.
        self._lock = asyncio.Lock()
        self._dirty = True  # Redis does not hold our state yet
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register the instance (best effort) and start heartbeating."""
        await self.beat()
        self._task = asyncio.create_task(self._run(), name=f"presence-{self.instance_id}")

    async def close(self) -> None:
        """Stop heartbeating and leave: this instance's users' diffs are published now."""
        await self._stop()
        await super().close()
        await self._guarded("close", self._leave_cluster, force=True)

    async def kill(self) -> None:
        """Stop all work without touching Redis, as ``kill -9`` would (for tests)."""
        await self._stop()
        await super().close()

    async def beat(self) -> None:
        """One heartbeat: reap dead instances, refresh ours, re-mirror if needed."""
        await self._guarded("heartbeat", self._heartbeat_op, force=True)

    async def online(self) -> dict[str, str]:
        union: dict[str, str | None] = {}
        if not self._dirty:
            try:
                async with self._lock:
                    reply = await self._script("online")
                    if reply[0]:
                        self._dirty = True  # reaped while cut off: re-mirror
                    await self._emit(_pairs(reply[1]))
                union.update(_pairs(reply[2]))
            except _FAILURES as exc:
                self._failed("online", exc)
        for user, status in self._status.items():  # local state is authoritative for us
            union[user] = strongest(union.get(user), status)
        return {user: status for user, status in union.items() if status is not None}

    async def _sync(self, username: str) -> None:
        await self._guarded("update", lambda: self._update(username))

    async def _update(self, username: str) -> list[tuple[str, str]]:
        need, diffs = await self._call("set", username, self._status.get(username, ""))
        if need:
            _, more = await self._mirror()
            diffs += more
        return diffs

    async def _leave_cluster(self) -> list[tuple[str, str]]:
        return (await self._call("close"))[1]

    async def _heartbeat_op(self) -> list[tuple[str, str]]:
        if self._dirty:
            return (await self._mirror())[1]
        need, diffs = await self._call("heartbeat")
        if need:
            log.warning("presence: instance %s was reaped; re-mirroring", self.instance_id)
            diffs += (await self._mirror())[1]
        return diffs

    async def _mirror(self) -> tuple[bool, list[tuple[str, str]]]:
        flat = [x for item in self._status.items() for x in item]
        result = await self._call("mirror", *flat)
        self._dirty = False
        return result

    async def _call(self, name: str, *args: str) -> tuple[bool, list[tuple[str, str]]]:
        reply = await self._script(name, *args)
        return bool(reply[0]), _pairs(reply[1])

    async def _script(self, name: str, *args: str) -> list[Any]:
        reply = await self._scripts[name](keys=self._keys, args=[*self._head, *args])
        assert isinstance(reply, list)
        return reply

    async def _guarded(
        self,
        what: str,
        op: Callable[[], Awaitable[list[tuple[str, str]]]],
        *,
        force: bool = False,
    ) -> None:
        """Run ``op`` and publish its diffs under the lock; log Redis failures.

        While Redis is known to be down (``_dirty``) only heartbeats (``force``)
        try it, so callers' hot paths never wait on a dead server.
        """
        if self._dirty and not force:
            return
        async with self._lock:
            try:
                diffs = await op()
            except _FAILURES as exc:
                self._failed(what, exc)
                return
            await self._emit(diffs)

    def _failed(self, what: str, exc: BaseException) -> None:
        if not self._dirty:
            log.warning("presence %s failed, will re-mirror: %s", what, exc)
        self._dirty = True

    async def _run(self) -> None:
        """Heartbeat forever; errors are logged and the loop goes on."""
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("presence heartbeat failed")

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
