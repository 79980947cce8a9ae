"""Settings: ``config.toml``, then ``PLAYHOUSE_<SECTION>_<KEY>`` env vars, then CLI.

Every layer is checked against the dataclasses below: an unknown section or key,
or a value of the wrong type, raises :class:`ConfigError` naming the key, which
``server.py`` prints as one line before exiting with code 2.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "AdminSettings",
    "ChannelSettings",
    "ConfigError",
    "GameSettings",
    "GuildSettings",
    "LimitSettings",
    "MongoSettings",
    "PresenceSettings",
    "RedisSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "Ws4RedisSettings",
    "load_settings",
    "safe_url",
]

ENV_PREFIX = "PLAYHOUSE_"


class ConfigError(Exception):
    """A configuration value is unknown, malformed or unusable."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = "0.0.0.0"
    port: int = 8000
    xheaders: bool = False
    cookie_secret: str = ""
    instance_id: str = ""
    drain_seconds: float = 10.0
    lag_probe_interval: float = 0.25
    backlog: int = 4096
    gc_full_interval: float = 300.0
    debug: bool = False


@dataclass(frozen=True)
class RedisSettings:
    url: str = ""
    timeout: float = 2.0


@dataclass(frozen=True)
class MongoSettings:
    url: str = ""
    database: str = "playhouse"
    data_dir: str = "data/mongo"
    timeout: float = 2.0


@dataclass(frozen=True)
class Ws4RedisSettings:
    prefix: str = ""
    heartbeat: str = "--heartbeat--"
    expire: int = 3600


@dataclass(frozen=True)
class ChannelSettings:
    public: tuple[str, ...] = ("notifications", "lobby")
    publishable: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecuritySettings:
    allowed_origins: tuple[str, ...] = ()
    bcrypt_rounds: int = 12
    bcrypt_threads: int = 0
    session_ttl: float = 1209600.0
    login_attempts_per_user: int = 10
    login_attempts_per_ip: int = 50
    registrations_per_ip: int = 20
    rate_window: int = 60


@dataclass(frozen=True)
class AdminSettings:
    token: str = ""


@dataclass(frozen=True)
class LimitSettings:
    max_message_bytes: int = 65536
    max_outgoing_bytes: int = 1048576
    socket_send_buffer: int = 262144
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    heartbeat_interval: float = 4.0
    messages_per_second: float = 20.0
    message_burst: int = 40
    max_sockets_per_user: int = 20
    max_sockets_per_ip: int = 200
    max_subscriptions: int = 64
    handshakes_per_ip: int = 60
    handshake_window: int = 10
    slow_client_seconds: float = 10.0
    exempt_ips: tuple[str, ...] = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class PresenceSettings:
    grace: float = 3.0
    heartbeat: float = 5.0
    ttl: float = 15.0


@dataclass(frozen=True)
class GameSettings:
    """Clocks and limits of live games (stored with each game when it starts)."""

    clock_seconds: float = 300.0
    move_seconds: float = 60.0
    abandon_seconds: float = 60.0
    challenge_seconds: float = 60.0
    sweep_interval: float = 1.0
    full_sweep_interval: float = 30.0
    chat_max_chars: int = 500


@dataclass(frozen=True)
class GuildSettings:
    """Bounds of guilds and their chat."""

    max_per_user: int = 20
    chat_max_chars: int = 500
    chat_history: int = 100
    chat_per_window: int = 20
    chat_window: int = 10


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    mongodb: MongoSettings = field(default_factory=MongoSettings)
    ws4redis: Ws4RedisSettings = field(default_factory=Ws4RedisSettings)
    channels: ChannelSettings = field(default_factory=ChannelSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    presence: PresenceSettings = field(default_factory=PresenceSettings)
    games: GameSettings = field(default_factory=GameSettings)
    guilds: GuildSettings = field(default_factory=GuildSettings)


def _sections() -> dict[str, type]:
    return {f.name: get_type_hints(Settings)[f.name] for f in dataclasses.fields(Settings)}


def _key_types(section_cls: type) -> dict[str, Any]:
    return get_type_hints(section_cls)


def _check_value(name: str, value: Any, expected: Any) -> Any:
    """Return ``value`` as ``expected`` or raise ConfigError naming ``name``."""
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif expected is str:
        ok = isinstance(value, str)
    else:  # tuple[str, ...]
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    if not ok:
        type_name = getattr(expected, "__name__", "list of strings")
        if expected not in (bool, int, float, str):
            type_name = "list of strings"
        raise ConfigError(f"config key {name!r} must be {type_name}, got {value!r}")
    return value


def _parse_env(name: str, raw: str, expected: Any) -> Any:
    """Convert an environment string to ``expected``, or raise ConfigError."""
    try:
        if expected is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if expected is int:
            return int(raw)
        if expected is float:
            return float(raw)
        if expected is str:
            return raw
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError:
        type_name = getattr(expected, "__name__", "list")
        raise ConfigError(f"env {name} must be {type_name}, got {raw!r}") from None


def _merge(layers: dict[str, dict[str, Any]], section: str, key: str, value: Any) -> None:
    layers.setdefault(section, {})[key] = value


def _from_toml(path: Path) -> dict[str, dict[str, Any]]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    sections = _sections()
    out: dict[str, dict[str, Any]] = {}
    for section, table in data.items():
        if section not in sections:
            raise ConfigError(f"unknown config section {section!r} in {path}")
        if not isinstance(table, dict):
            raise ConfigError(f"config section {section!r} must be a table")
        types = _key_types(sections[section])
        for key, value in table.items():
            if key not in types:
                raise ConfigError(f"unknown config key '{section}.{key}' in {path}")
            _merge(out, section, key, _check_value(f"{section}.{key}", value, types[key]))
    return out


def _from_env(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    sections = _sections()
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        for section, cls in sections.items():
            if rest.startswith(section + "_"):
                key = rest[len(section) + 1 :]
                types = _key_types(cls)
                if key in types:
                    _merge(out, section, key, _parse_env(name, raw, types[key]))
                    break
        else:
            raise ConfigError(f"unknown config env variable {name}")
    return out


def load_settings(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from defaults, the TOML file, the environment and overrides.

    Args:
        path: TOML file; ``None`` uses only built-in defaults.
        environ: environment mapping (defaults to ``os.environ``).
        overrides: ``{"section.key": value}`` from the command line; wins over all.

    Raises:
        ConfigError: naming the offending file, key or variable.
    """
    merged: dict[str, dict[str, Any]] = {}
    layers = [
        _from_toml(path) if path is not None else {},
        _from_env(os.environ if environ is None else environ),
    ]
    for layer in layers:
        for section, values in layer.items():
            merged.setdefault(section, {}).update(values)
    sections = _sections()
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        types = _key_types(sections[section]) if section in sections else {}
        if key not in types:
            raise ConfigError(f"unknown config key {dotted!r}")
        _merge(merged, section, key, _check_value(dotted, value, types[key]))
    built = {name: cls(**merged.get(name, {})) for name, cls in sections.items()}
    settings = Settings(**built)
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    """Reject values that have the right type but cannot work."""
    if not 0 <= settings.server.port <= 65535:
        raise ConfigError(f"config key 'server.port' must be 0-65535, got {settings.server.port}")
    if settings.server.gc_full_interval < 0:
        raise ConfigError("config key 'server.gc_full_interval' must be >= 0")
    if settings.server.backlog <= 0:
        raise ConfigError("config key 'server.backlog' must be positive")
    url = settings.redis.url
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"config key 'redis.url' must start with redis://, rediss:// or unix://, got {url!r}"
        )
    limits = settings.limits
    for key in (
        "max_message_bytes",
        "max_outgoing_bytes",
        "messages_per_second",
        "message_burst",
        "max_sockets_per_user",
        "max_sockets_per_ip",
        "max_subscriptions",
        "handshakes_per_ip",
        "handshake_window",
        "slow_client_seconds",
    ):
        if getattr(limits, key) <= 0:
            raise ConfigError(f"config key 'limits.{key}' must be positive")
    if limits.socket_send_buffer < 0:
        raise ConfigError("config key 'limits.socket_send_buffer' must be >= 0")
    if not 4 <= settings.security.bcrypt_rounds <= 31:
        raise ConfigError("config key 'security.bcrypt_rounds' must be 4-31")
    if settings.ws4redis.expire < 0:
        raise ConfigError("config key 'ws4redis.expire' must be >= 0")
    for key, value in dataclasses.asdict(settings.games).items():
        if value <= 0:
            raise ConfigError(f"config key 'games.{key}' must be positive")
    for key, value in dataclasses.asdict(settings.guilds).items():
        if value <= 0:
            raise ConfigError(f"config key 'guilds.{key}' must be positive")


def safe_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
