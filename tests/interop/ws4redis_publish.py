"""Publish through django-websocket-redis 0.6.0 itself, in a process of its own.

Run as ``python ws4redis_publish.py`` with a JSON job on stdin::

    {"port": 6379, "prefix": "pfx", "expire": 0,
     "actions": [
       {"op": "publish", "facility": "notifications", "broadcast": true,
        "users": [], "groups": [], "sessions": [], "expire": null,
        "messages": [{"text": "hi"}, {"b64": "/w=="}]},
       {"op": "fetch", "facility": "notifications", "audience": "broadcast"}]}

``text`` messages are handed to ``RedisMessage`` as ``str``, ``b64`` ones as
``bytes``. Prints ``{"fetched": [<b64 or null>, ...]}`` (one per ``fetch``).
Deliberately imports nothing from Playhouse or its tests.
"""

from __future__ import annotations

import base64
import json
import sys


def main() -> int:
    job = json.load(sys.stdin)
    from django.conf import settings

    settings.configure(
        WS4REDIS_CONNECTION={"host": "127.0.0.1", "port": job["port"], "db": 0},
        WS4REDIS_PREFIX=job.get("prefix"),
        WS4REDIS_EXPIRE=job.get("expire", 0),
        WS4REDIS_HEARTBEAT=job.get("heartbeat", "--heartbeat--"),
    )
    from ws4redis.publisher import RedisPublisher
    from ws4redis.redis_store import RedisMessage

    fetched: list[str | None] = []
    for action in job["actions"]:
        if action["op"] == "publish":
            publisher = RedisPublisher(
                facility=action["facility"],
                broadcast=action.get("broadcast", False),
                users=list(action.get("users", [])),
                groups=list(action.get("groups", [])),
                sessions=list(action.get("sessions", [])),
            )
            for item in action["messages"]:
                value = item["text"] if "text" in item else base64.b64decode(item["b64"])
                publisher.publish_message(RedisMessage(value), expire=action.get("expire"))
        elif action["op"] == "fetch":
            publisher = RedisPublisher(facility=action["facility"])
            found = publisher.fetch_message(None, action["facility"], action["audience"])
            fetched.append(None if found is None else base64.b64encode(found).decode())
        else:
            raise SystemExit(f"unknown op {action['op']!r}")
    json.dump({"fetched": fetched}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
