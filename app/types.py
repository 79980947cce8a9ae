"""Shared value types: identifiers and the identity a request carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

__all__ = ["ANONYMOUS", "Channel", "Facility", "Identity", "Username"]

Channel = NewType("Channel", str)
"""A broker channel name, e.g. ``"prefix:broadcast:notifications"``."""

Facility = NewType("Facility", str)
"""The ws4redis facility: the path after ``/ws/``."""

Username = NewType("Username", str)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is behind a request, as far as channels are concerned.

    ``username`` is ``None`` for anonymous visitors; ``groups`` fills
    ws4redis' group channels; ``session_key`` its session channels.
    """

    username: Username | None = None
    groups: tuple[str, ...] = ()
    session_key: str | None = None
    is_admin: bool = False

    @property
    def authenticated(self) -> bool:
        return self.username is not None


ANONYMOUS = Identity()
