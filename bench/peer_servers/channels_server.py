"""Peer: Django Channels with channels_redis, served by daphne (runs in its own virtualenv).

A one-file Django project, written the way the Channels tutorial shows it:
``AsyncWebsocketConsumer`` classes that join a group with ``channel_layer.group_add`` and fan
messages out with ``channel_layer.group_send``; a ``ProtocolTypeRouter`` with Django's ASGI app
for HTTP (``GET /healthz`` answers 200) and a ``URLRouter`` for WebSockets.

* ``/ws/<facility>?subscribe-broadcast`` joins group ``<facility>``; a text message from a
  ``?publish-broadcast`` connection goes to the group with ``group_send`` and every member sends
  exactly the text it got (so the load generator's raw 100-byte frames pass unchanged).
* ``/relay/<game>?seat=<0|1>``: the relay protocol of ``bench/relay.py`` (resume → ``resumed``;
  move → ``ack`` to the mover and ``state`` to the group; resign → ``ack`` and a finished
  ``state``). Nothing is stored.

The channel layer is ``PEER_CHANNEL_LAYER``: ``core`` (default), the
``channels_redis.core.RedisChannelLayer`` the Channels documentation configures, where
``group_send`` writes one Redis list entry per group member; or ``pubsub``,
``channels_redis.pubsub.RedisPubSubChannelLayer`` (one PUBLISH per ``group_send``, fanned out in
the process). Redis is ``PEER_REDIS_URL``.

Run (from this folder): ``daphne -b 127.0.0.1 -p 8000 channels_server:application``.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qs

import django  # type: ignore[import-not-found]
from django.conf import settings  # type: ignore[import-not-found]

LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only",
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["channels"],
    ROOT_URLCONF=__name__,
    DATABASES={},
    ASGI_APPLICATION=f"{__name__}.application",
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": LAYERS[os.environ.get("PEER_CHANNEL_LAYER", "core")],
            "CONFIG": {"hosts": [os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0")]},
        }
    },
)
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path, re_path  # noqa: E402


class BroadcastConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Subscriber, publisher, or both, depending on the query string."""

    async def connect(self) -> None:
        query = self.scope["query_string"].decode()
        self.group = self.scope["url_route"]["kwargs"]["facility"]
        self.publisher = "publish-broadcast" in query
        self.subscriber = "subscribe-broadcast" in query
        if self.subscriber:
            await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.subscriber:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.publisher and text_data is not None:
            await self.channel_layer.group_send(
                self.group, {"type": "broadcast.message", "text": text_data}
            )

    async def broadcast_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class RelayConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """One seat of one game: moves relayed to both seats through the game's group."""

    async def connect(self) -> None:
        self.game = self.scope["url_route"]["kwargs"]["game"]
        self.seat = int(parse_qs(self.scope["query_string"].decode())["seat"][0])
        self.seq = 0  # latest state this seat forwarded (only to answer a resignation)
        await self.channel_layer.group_add(self.game, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.game, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        msg = json.loads(text_data or "{}")
        kind = msg["type"]
        if kind == "resume":
            await self.send(text_data=json.dumps({"type": "resumed", "seq": self.seq, "chat": 0}))
            return
        seq = (msg["seq"] if kind == "move" else self.seq) + 1
        await self.send(text_data=json.dumps({"type": "ack", "id": msg["id"], "seq": seq}))
        state = {
            "type": "state",
            "game": self.game,
            "seq": seq,
            "version": seq,
            "status": "active" if kind == "move" else "finished",
            "last": {"player": f"p-{self.seat}", "type": kind, "move": msg.get("move")},
            "to_move": [f"p-{1 - self.seat}"] if kind == "move" else [],
        }
        await self.channel_layer.group_send(
            self.game, {"type": "relay.state", "seq": seq, "text": json.dumps(state)}
        )

    async def relay_state(self, event: dict[str, Any]) -> None:
        self.seq = max(self.seq, event["seq"])
        await self.send(text_data=event["text"])


def healthz(_request: HttpRequest) -> HttpResponse:
    """Readiness probe."""
    return HttpResponse("ok")


urlpatterns = [path("healthz", healthz)]

application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": URLRouter(
            [
                re_path(r"^ws/(?P<facility>[^/]+)$", BroadcastConsumer.as_asgi()),
                re_path(r"^relay/(?P<game>[^/]+)$", RelayConsumer.as_asgi()),
            ]
        ),
    }
)
