"""``python server.py create-admin NAME``: a real subprocess on a real MongoDB database."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator

import pytest
from tornado.httpclient import AsyncHTTPClient

from app.runtime import Instance
from tests.conftest import MakeInstance
from tests.handlers.test_accounts_api import Browser, assert_error, data
from tests.support import ROOT, clean_env, server_command

SECRET = "an admin passphrase 7f3a"


@pytest.fixture
async def http() -> AsyncIterator[AsyncHTTPClient]:
    client = AsyncHTTPClient(force_instance=True)
    yield client
    client.close()


async def create_admin(
    env: dict[str, str], *args: str, stdin: str = SECRET + "\n"
) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``stdin`` piped in (so never a terminal prompt)."""
    command = server_command("create-admin", *args)
    assert all(SECRET not in arg for arg in command)
    return await asyncio.to_thread(
        subprocess.run,
        command,
        input=stdin,
        capture_output=True,
        text=True,
        env=clean_env(**env),
        cwd=ROOT,
        timeout=60,
    )


def no_secret_in(result: subprocess.CompletedProcess[str]) -> None:
    assert SECRET not in result.stdout
    assert SECRET not in result.stderr


async def same_database(make_instance: MakeInstance, env: dict[str, str]) -> Instance:
    instance: Instance = await make_instance(
        **{
            "mongodb.url": env["PLAYHOUSE_MONGODB_URL"],
            "mongodb.database": env["PLAYHOUSE_MONGODB_DATABASE"],
        }
    )
    return instance


async def test_create_admin_then_log_in(
    mongo_env: dict[str, str], make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    result = await create_admin(mongo_env, "Boss")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Boss is an admin"
    no_secret_in(result)

    instance = await same_database(make_instance, mongo_env)
    user = await instance.deps.storage.users.get("boss")  # type: ignore[union-attr]
    assert user is not None and user.is_admin and user.username == "Boss"
    browser = Browser(http, instance)
    response = await browser.login("boss", SECRET)
    assert response.code == 200, response.body
    assert data(response)["role"] == "admin"
    notice = await browser.call("POST", "/api/admin/broadcast", {"text": "hello", "expire": 5})
    assert notice.code == 201, notice.body


async def test_create_admin_promotes_and_resets_an_existing_user(
    mongo_env: dict[str, str], make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await same_database(make_instance, mongo_env)
    player = Browser(http, instance)
    assert (await player.register("player", "old password 1")).code == 201
    assert data(await player.me())["role"] == "user"

    result = await create_admin(mongo_env, "PLAYER")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "player is an admin"
    no_secret_in(result)

    assert data(await player.me())["role"] == "admin"  # the role is read on every request
    fresh = Browser(http, instance)
    assert_error(await fresh.login("player", "old password 1"), 401, "bad_credentials")
    assert (await fresh.login("player", SECRET)).code == 200
    users = await instance.deps.storage.users.get("player")  # type: ignore[union-attr]
    assert users is not None and users.is_admin

    again = await create_admin(mongo_env, "player", stdin="yet another secret\n")
    assert again.returncode == 0, again.stderr
    assert (await Browser(http, instance).login("player", "yet another secret")).code == 200


@pytest.mark.parametrize(
    ("args", "stdin", "words"),
    [
        pytest.param(("bad name",), SECRET + "\n", "username may contain only", id="space"),
        pytest.param(("a:b",), SECRET + "\n", "username may contain only", id="colon"),
        pytest.param(("ab",), SECRET + "\n", "3-32", id="short"),
        pytest.param(("x" * 100,), SECRET + "\n", "3-32", id="long"),
        pytest.param(("boss",), "short\n", "at least 8", id="short-password"),
        pytest.param(("boss",), "", "password is required", id="no-password"),
        pytest.param((), SECRET + "\n", "needs a user name", id="no-name"),
    ],
)
async def test_bad_input_exits_2_with_one_line(
    mongo_env: dict[str, str],
    make_instance: MakeInstance,
    args: tuple[str, ...],
    stdin: str,
    words: str,
) -> None:
    result = await create_admin(mongo_env, *args, stdin=stdin)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("playhouse: error: ")
    assert words in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    no_secret_in(result)
    instance = await same_database(make_instance, mongo_env)
    assert await instance.deps.storage.users.get("boss") is None  # type: ignore[union-attr]


async def test_password_cannot_be_given_on_the_command_line(mongo_env: dict[str, str]) -> None:
    """There is no ``--password`` option: argv is visible to every user through ``ps``."""
    result = await create_admin(mongo_env, "boss", "--password", "hunter2hunter2", stdin="")
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr
    assert "Traceback" not in result.stderr


async def test_database_unreachable_exits_2(mongo_env: dict[str, str]) -> None:
    env = {
        **mongo_env,
        "PLAYHOUSE_MONGODB_URL": "mongodb://127.0.0.1:1/",
        "PLAYHOUSE_MONGODB_TIMEOUT": "0.3",
    }
    result = await create_admin(env, "boss")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("playhouse: error: "), result.stderr
    assert "database unavailable" in lines[0]
    no_secret_in(result)
