"""Which ws4redis flags a connection may use, and the channels they mean.

The policy is ws4redis' ``WS4REDIS_ALLOWED_CHANNELS`` seam: later features
(games, guilds) replace :class:`DefaultPolicy` with richer rules.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Protocol

from app.errors import BadRequest, Forbidden
from app.pubsub import ChannelNames
from app.types import Identity

__all__ = [
    "FLAGS",
    "ChannelPlan",
    "ChannelPolicy",
    "DefaultPolicy",
    "parse_flags",
    "plan_channels",
    "validate_facility",
]

SUBSCRIBE_FLAGS = ("subscribe-broadcast", "subscribe-user", "subscribe-group", "subscribe-session")
PUBLISH_FLAGS = ("publish-broadcast", "publish-user", "publish-group", "publish-session")
FLAGS = frozenset((*SUBSCRIBE_FLAGS, *PUBLISH_FLAGS, "echo"))
_FACILITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def validate_facility(facility: str) -> str:
    """Return ``facility`` or raise BadRequest: 1-64 of ``A-Z a-z 0-9 _ . -``."""
    if not _FACILITY.fullmatch(facility):
        raise BadRequest(
            f"invalid facility {facility[:80]!r}: use 1-64 letters, digits, '_', '.' or '-'",
            code="bad_facility",
        )
    return facility


def parse_flags(query: str) -> frozenset[str]:
    """Parse ws4redis flags from a query string (case-insensitive, values ignored).

    Raises:
        BadRequest: an unknown flag, or no subscribe/publish flag at all.
    """
    flags = set()
    for part in query.split("&"):
        name = part.split("=", 1)[0].strip().lower()
        if not name:
            continue
        if name not in FLAGS:
            raise BadRequest(
                f"unknown flag {name[:40]!r}; known: {', '.join(sorted(FLAGS))}", code="bad_flag"
            )
        flags.add(name)
    if not flags - {"echo"}:
        raise BadRequest("no subscribe-* or publish-* flag given", code="no_flags")
    return frozenset(flags)


class ChannelPolicy(Protocol):
    """Hashable (plans are cached per policy), e.g. a frozen dataclass."""

    def __hash__(self) -> int: ...

    def allowed_flags(self, identity: Identity, facility: str) -> frozenset[str]:
        """The subset of FLAGS ``identity`` may use on ``facility``."""


@dataclass(frozen=True)
class DefaultPolicy:
    """Anonymous: subscribe-broadcast on public facilities. Users: any broadcast.

    Everyone may ask for subscribe-user/group/session; they mean one's own channels.

    ``publish-*`` only on facilities listed in ``channels.publishable``, which
    are also open to ``subscribe-broadcast`` for everyone.
    """

    public: frozenset[str]
    publishable: frozenset[str]

    def allowed_flags(self, identity: Identity, facility: str) -> frozenset[str]:
        # Own user/group/session channels are always allowed: they resolve to the
        # identity's own channels only, and to none at all for anonymous visitors.
        allowed = {"echo", "subscribe-user", "subscribe-group", "subscribe-session"}
        if identity.authenticated or facility in self.public or facility in self.publishable:
            allowed.add("subscribe-broadcast")
        if facility in self.publishable:
            allowed.add("publish-broadcast")
            if identity.authenticated:
                allowed.update(("publish-user", "publish-group", "publish-session"))
        return frozenset(allowed)


@dataclass(frozen=True, slots=True)
class ChannelPlan:
    """The channels one connection subscribes and publishes to."""

    subscribe: tuple[str, ...]
    publish: tuple[str, ...]
    echo: bool


@functools.lru_cache(maxsize=4096)
def plan_channels(
    names: ChannelNames,
    policy: ChannelPolicy,
    identity: Identity,
    facility: str,
    flags: frozenset[str],
) -> ChannelPlan:
    """Resolve flags to channels for ``identity``, as ws4redis does for ``SELF``.

    Cached: the thousands of sockets with the same identity and flags (all
    anonymous lobby watchers, say) share one plan and one set of channel strings.

    Raises:
        Forbidden: a flag the policy does not allow on this facility.
    """
    denied = flags - policy.allowed_flags(identity, facility)
    if denied:
        raise Forbidden(
            f"flag {sorted(denied)[0]!r} not allowed on facility {facility!r}",
            code="flag_forbidden",
        )

    def channels(kind: str) -> tuple[str, ...]:
        return tuple(
            names.audience(
                facility,
                broadcast=f"{kind}-broadcast" in flags,
                users=[identity.username] if f"{kind}-user" in flags and identity.username else [],
                groups=identity.groups if f"{kind}-group" in flags else (),
                sessions=[identity.session_key]
                if f"{kind}-session" in flags and identity.session_key
                else [],
            )
        )

    return ChannelPlan(
        subscribe=channels("subscribe"), publish=channels("publish"), echo="echo" in flags
    )
