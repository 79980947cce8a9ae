"""What page and API handlers share, injected once through route kwargs."""

from __future__ import annotations

from dataclasses import dataclass

from app.connections import ConnectionSet
from app.control import ControlChannel
from app.presence import Presence
from app.services.accounts import Accounts
from app.services.guilds import Guilds
from app.services.lobby import Lobby
from app.services.notices import Notices
from app.services.play import Play
from app.storage.games import GameRepo

__all__ = ["WebContext"]


@dataclass(frozen=True)
class WebContext:
    accounts: Accounts
    notices: Notices
    control: ControlChannel
    connections: ConnectionSet
    session_ttl: float
    heartbeat: str
    admin_token: str
    lobby: Lobby
    presence: Presence
    play: Play
    games: GameRepo
    guilds: Guilds
