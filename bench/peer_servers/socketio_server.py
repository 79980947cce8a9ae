"""Peer: python-socketio with its Redis manager, on aiohttp (runs in its own virtualenv).

Written the way the python-socketio documentation shows it:
``socketio.AsyncServer(async_mode="aiohttp", client_manager=socketio.AsyncRedisManager(url))``
attached to an ``aiohttp.web.Application``; ``GET /healthz`` answers 200.

* Broadcast (the fan-out load generator): a client whose query string holds
  ``subscribe-broadcast`` joins room ``bench`` in its ``connect`` handler; an ``m`` event from a
  ``publish-broadcast`` client is re-emitted unchanged with ``sio.emit("m", data, room="bench")``.
* Game relay: ``?game=<id>&seat=<0|1>`` joins room ``<id>``; ``msg`` events carry the relay
  protocol of ``bench/relay.py`` (resume → ``resumed``; move → ``ack`` to the mover and
  ``state`` to the room; resign → ``ack`` and a finished ``state``). Nothing is stored.

Every ``emit`` goes through the manager: delivered to this host's clients and published on Redis
for other hosts (python-socketio 5 delivers locally first, then publishes).

Run: ``python socketio_server.py --port 8000 --redis redis://127.0.0.1:6379/0``.
"""

from __future__ import annotations

import argparse
import resource
from typing import Any
from urllib.parse import parse_qs

import socketio  # type: ignore[import-not-found]
from aiohttp import web  # type: ignore[import-not-found]

BROADCAST_ROOM = "bench"


def build(redis_url: str, ping_interval: float) -> web.Application:
    """The aiohttp application with the Socket.IO server attached."""
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=socketio.AsyncRedisManager(redis_url),
        cors_allowed_origins="*",
        ping_interval=ping_interval,
        ping_timeout=ping_interval,
    )
    games: dict[str, int] = {}  # game id -> latest seq (only to answer a resignation)

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        query = environ.get("QUERY_STRING", "")
        params = parse_qs(query)
        session = {"publisher": "publish-broadcast" in query}
        if "subscribe-broadcast" in query:
            await sio.enter_room(sid, BROADCAST_ROOM)
        if "game" in params:
            session["game"], session["seat"] = params["game"][0], int(params["seat"][0])
            games.setdefault(session["game"], 0)
            await sio.enter_room(sid, session["game"])
        await sio.save_session(sid, session)

    @sio.on("m")
    async def broadcast(sid: str, data: Any) -> None:
        session = await sio.get_session(sid)
        if session["publisher"]:
            await sio.emit("m", data, room=BROADCAST_ROOM)

    @sio.on("msg")
    async def relay(sid: str, msg: dict[str, Any]) -> None:
        session = await sio.get_session(sid)
        game, seat = session["game"], session["seat"]
        kind = msg["type"]
        if kind == "resume":
            await sio.emit("msg", {"type": "resumed", "seq": games[game], "chat": 0}, to=sid)
            return
        seq = games[game] = (msg["seq"] if kind == "move" else games[game]) + 1
        await sio.emit("msg", {"type": "ack", "id": msg["id"], "seq": seq}, to=sid)
        me, other = f"p-{seat}", f"p-{1 - seat}"
        state = {
            "type": "state",
            "game": game,
            "seq": seq,
            "version": seq,
            "status": "active" if kind == "move" else "finished",
            "last": {"player": me, "type": kind, "move": msg.get("move")},
            "to_move": [other] if kind == "move" else [],
        }
        await sio.emit("msg", state, room=game)

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    sio.attach(app)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--redis", required=True, help="redis:// URL")
    parser.add_argument("--ping-interval", type=float, default=25.0, help="Engine.IO pings (s)")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    app = build(args.redis, args.ping_interval)
    web.run_app(app, host="127.0.0.1", port=args.port, backlog=4096, access_log=None, print=None)


if __name__ == "__main__":
    main()
