"""Accounts and live notices in Chromium, against ``server.py`` on Redis and MongoDB.

A player registers (on a phone-sized screen), logs out and back in; an admin in a
second browser context broadcasts from ``/admin``; the player sees it as a toast, and
so is a plain-text message published by django-websocket-redis from another process.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ServerProcess, require, wait_for
from tests.support import ROOT, RedisProcess, clean_env, server_command

pytestmark = [pytest.mark.browser, pytest.mark.redis]

CHANNEL = "broadcast:notifications"
PUBLISH_SCRIPT = ROOT / "tests" / "interop" / "ws4redis_publish.py"
PHONE = {"width": 360, "height": 740}
NOTICES_OPEN = "() => window.playhouseNotices?.client.readyState === WebSocket.OPEN"
RECEIVED = "m => window.playhouseNotices.received.includes(m)"
NOTICE_RECEIVED = """t => window.playhouseNotices.received.some(m => {
    try { return JSON.parse(m).text === t; } catch (e) { return false; }
})"""

NewPage = Callable[..., Any]


@pytest.fixture
def new_page(browser: Any) -> Iterator[NewPage]:
    """``new_page(viewport=...)`` → a page in a context of its own (its own cookies).

    Uncaught page errors and Content-Security-Policy violations fail the test.
    """
    contexts: list[Any] = []
    problems: list[str] = []

    def console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    def make(**options: Any) -> Any:
        context = browser.new_context(**options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", console)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not problems, f"errors in the pages: {problems}"


def create_admin(server: ServerProcess, name: str, password: str) -> None:
    """``server.py create-admin NAME``, password on stdin, on the server's database."""
    done = subprocess.run(
        server_command("create-admin", name),
        input=password + "\n",
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"create-admin failed:\n{done.stdout}\n{done.stderr}"


def ws4redis_publish(
    redis_server: RedisProcess, message: str, *, users: list[str] | None = None
) -> None:
    """Publish ``message`` with ws4redis' own ``RedisPublisher``, in a process of its own.

    To everyone (``broadcast=True``), or only to ``users`` when given.
    """
    require(
        importlib.util.find_spec("ws4redis") is not None,
        "django-websocket-redis is not installed (tests/requirements-interop.txt)",
    )
    job = {
        "port": redis_server.port,
        "prefix": None,
        "expire": 0,
        "actions": [
            {
                "op": "publish",
                "facility": "notifications",
                "broadcast": users is None,
                "users": users or [],
                "messages": [{"text": message}],
            }
        ],
    }
    done = subprocess.run(
        [sys.executable, str(PUBLISH_SCRIPT)],
        input=json.dumps(job),
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"ws4redis publisher failed:\n{done.stderr}"


def log_in(page: Any, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#submit")
    page.wait_for_url(f"{base}/")


def expect_signed_in(page: Any, username: str) -> None:
    expect(page.locator(".nav-user")).to_have_text(f"Signed in as {username}")
    expect(page.locator("body")).to_have_attribute("data-signed-in", "yes")
    expect(page.locator("#logout")).to_be_visible()


def listening(page: Any, redis_server: RedisProcess) -> None:
    """The page's notices socket is open and the instance is subscribed in Redis."""
    page.wait_for_function(NOTICES_OPEN)
    wait_for(lambda: redis_server.numsub(CHANNEL) == 1, what=f"a subscriber on {CHANNEL}")


def toast(page: Any, text: str) -> Any:
    return page.locator("#toasts .toast").filter(has=page.locator(".toast-text", has_text=text))


def test_register_log_out_log_in_and_see_notices_as_toasts(
    new_page: NewPage, playhouse: Callable[..., ServerProcess], redis_server: RedisProcess
) -> None:
    server = playhouse()
    base = server.url
    player = new_page(viewport=PHONE)

    # Register: straight in, signed in, on a phone-width page that does not scroll sideways.
    player.goto(f"{base}/")
    expect(player.locator("body")).to_have_attribute("data-signed-in", "no")
    player.click("a[href='/register'] >> nth=0")
    player.wait_for_url(f"{base}/register")
    player.fill("#username", "alice_1")
    player.fill("#password", "correct horse battery")
    player.fill("#password2", "correct horse battery")
    player.click("#submit")
    player.wait_for_url(f"{base}/")
    expect_signed_in(player, "alice_1")
    expect(player.locator("a[href='/admin']")).to_have_count(0)
    assert player.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # Log out, then log in again.
    player.click("#logout")
    player.wait_for_url(f"{base}/")
    expect(player.locator("body")).to_have_attribute("data-signed-in", "no")
    expect(player.locator(".site-nav a[href='/login']")).to_be_visible()
    player.goto(f"{base}/login")
    player.fill("#username", "alice_1")
    player.fill("#password", "wrong password")
    player.click("#submit")
    expect(player.locator("#form-error")).to_be_visible()
    expect(player.locator("#username")).to_have_value("alice_1")
    log_in(player, base, "alice_1", "correct horse battery")
    expect_signed_in(player, "alice_1")
    reply = player.goto(f"{base}/admin")
    assert reply is not None and reply.status == 403
    expect(player.locator("#error-heading")).to_have_text("Access denied")
    player.go_back()

    # An admin, in a browser of their own, broadcasts from /admin.
    create_admin(server, "boss", "admin password 1")
    admin = new_page()
    log_in(admin, base, "boss", "admin password 1")
    expect_signed_in(admin, "boss")
    admin.click(".site-nav a[href='/admin']")
    admin.wait_for_url(f"{base}/admin")
    expect(admin.locator("#notices")).to_have_text("No notices yet.")

    listening(player, redis_server)
    notice = "Tournament at 18:00 <b>sharp</b> & on time"
    admin.fill("#notice-text", notice)
    expect(admin.locator("#notice-expire")).to_have_value("3600")  # kept for late joiners
    admin.click("#broadcast")
    expect(admin.locator("#flash")).to_be_visible()
    expect(admin.locator("#notices .notice-text")).to_have_text([notice])

    shown = toast(player, notice)
    expect(shown).to_have_count(1)
    expect(shown.locator(".toast-author")).to_contain_text("boss")
    assert player.locator("#toasts b").count() == 0, "text, never markup"
    player.wait_for_function(NOTICE_RECEIVED, arg=notice)

    # After a reload the server replays the kept notice: received, but not shown twice.
    player.reload()
    player.wait_for_function(NOTICE_RECEIVED, arg=notice)
    expect(player.locator("#toasts .toast")).to_have_count(0)

    # A plain-text message from ws4redis' own publisher, in another process.
    listening(player, redis_server)
    plain = 'plain text from ws4redis: {"type": "notice"'
    ws4redis_publish(redis_server, plain)
    player.wait_for_function(RECEIVED, arg=plain)
    from_ws4redis = toast(player, plain)
    expect(from_ws4redis).to_have_count(1)
    expect(from_ws4redis.locator(".toast-text")).to_have_text(plain)
    expect(from_ws4redis.locator(".toast-author")).to_have_count(0)

    # The close button removes it.
    from_ws4redis.locator(".toast-close").click()
    expect(player.locator("#toasts .toast")).to_have_count(0)

    # A message for one user only (ws4redis' RedisPublisher(users=[...]) from another
    # process) reaches that user's page and nobody else's.
    bystander = new_page()
    bystander.goto(f"{base}/register")
    bystander.fill("#username", "bob_2")
    bystander.fill("#password", "another password")
    bystander.fill("#password2", "another password")
    bystander.click("#submit")
    bystander.wait_for_url(f"{base}/")
    bystander.wait_for_function(NOTICES_OPEN)
    for name in ("alice_1", "bob_2"):
        channel = f"user:{name}:notifications"
        wait_for(lambda channel=channel: redis_server.numsub(channel) == 1, what=channel)
    private = "only for alice_1: your table is ready"
    ws4redis_publish(redis_server, private, users=["alice_1"])
    player.wait_for_function(RECEIVED, arg=private)
    expect(toast(player, private)).to_have_count(1)
    broadcast = "and this one is for everybody"
    ws4redis_publish(redis_server, broadcast)
    bystander.wait_for_function(RECEIVED, arg=broadcast)
    assert private not in bystander.evaluate("window.playhouseNotices.received")
