"""Settings: TOML, env and CLI layers, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.config import ConfigError, load_settings
from tests.support import ROOT, clean_env, free_port, server_command

CONFIG = ROOT / "config.toml"


def test_defaults_from_config_toml() -> None:
    settings = load_settings(CONFIG, environ={})
    assert settings.server.port == 8000
    assert settings.redis.url == ""
    assert settings.ws4redis.heartbeat == "--heartbeat--"
    assert settings.limits.max_message_bytes == 65536
    assert settings.channels.public == ("notifications", "lobby")


def test_env_overrides_every_type() -> None:
    env = {
        "PLAYHOUSE_SERVER_PORT": "8001",
        "PLAYHOUSE_REDIS_URL": "redis://127.0.0.1:1/0",
        "PLAYHOUSE_WS4REDIS_PREFIX": "pfx",
        "PLAYHOUSE_WS4REDIS_HEARTBEAT": "",
        "PLAYHOUSE_SERVER_XHEADERS": "true",
        "PLAYHOUSE_LIMITS_PING_TIMEOUT": "1.5",
        "PLAYHOUSE_SECURITY_ALLOWED_ORIGINS": "https://a.example, https://b.example",
    }
    settings = load_settings(CONFIG, environ=env)
    assert settings.server.port == 8001
    assert settings.redis.url == "redis://127.0.0.1:1/0"
    assert settings.ws4redis.prefix == "pfx"
    assert settings.ws4redis.heartbeat == ""
    assert settings.server.xheaders is True
    assert settings.limits.ping_timeout == 1.5
    assert settings.security.allowed_origins == ("https://a.example", "https://b.example")


def test_cli_overrides_win_over_env() -> None:
    settings = load_settings(
        CONFIG, environ={"PLAYHOUSE_SERVER_PORT": "8001"}, overrides={"server.port": 8002}
    )
    assert settings.server.port == 8002


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[server]\nprt = 1\n", "unknown config key 'server.prt'"),
        ("[nope]\n", "unknown config section 'nope'"),
        ('[server]\nport = "x"\n', "'server.port' must be int"),
        ("[server]\nxheaders = 1\n", "'server.xheaders' must be bool"),
        ("[channels]\npublic = [1]\n", "'channels.public' must be list of strings"),
        ("[server]\nport = 70000\n", "'server.port' must be 0-65535"),
        ('[redis]\nurl = "http://x"\n', "'redis.url' must start with redis://"),
        ("[server\n", "is not valid TOML"),
    ],
)
def test_bad_toml_names_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_settings(path, environ={})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PLAYHOUSE_SERVER_PORT": "eighty"}, "PLAYHOUSE_SERVER_PORT must be int"),
        ({"PLAYHOUSE_SERVER_DEBUG": "maybe"}, "PLAYHOUSE_SERVER_DEBUG must be bool"),
        ({"PLAYHOUSE_SERVER_NOPE": "1"}, "unknown config env variable PLAYHOUSE_SERVER_NOPE"),
    ],
)
def test_bad_env_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(CONFIG, environ=env)


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'server.nope'"):
        load_settings(CONFIG, environ={}, overrides={"server.nope": 1})


def _run_server(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        server_command(*args), env=clean_env(**env), capture_output=True, text=True, timeout=30
    )


def test_server_exits_2_with_one_line_on_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nprt = 1\n")
    result = _run_server("--config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"playhouse: error: unknown config key 'server.prt' in {path}"
    ]


def test_server_exits_2_on_wrong_env_type() -> None:
    result = _run_server(PLAYHOUSE_SERVER_PORT="abc")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        == "playhouse: error: env PLAYHOUSE_SERVER_PORT must be int, got 'abc'"
    )


def test_server_exits_2_when_redis_unreachable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = _run_server("--port", str(free_port()), PLAYHOUSE_REDIS_URL=url)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"playhouse: error: cannot reach Redis at {url}"]
