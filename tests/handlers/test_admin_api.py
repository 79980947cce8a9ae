"""``POST /api/admin/broadcast`` over real HTTP and sockets: who may send, what is checked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from app.runtime import Instance
from tests.conftest import MakeInstance, ws_url
from tests.handlers.test_accounts_api import PASSWORD, Browser, assert_error, data, next_message
from tests.support import wait_until, ws_open

TOKEN = "operator-token-0123456789"
NOTIFICATIONS = "/ws/notifications?subscribe-broadcast"


@pytest.fixture
async def http() -> AsyncIterator[AsyncHTTPClient]:
    client = AsyncHTTPClient(force_instance=True, max_clients=16)
    yield client
    client.close()


async def admin_browser(http: AsyncHTTPClient, instance: Instance, name: str = "boss") -> Browser:
    await instance.deps.accounts.create_admin(name, PASSWORD)  # type: ignore[union-attr]
    browser = Browser(http, instance)
    response = await browser.login(name)
    assert response.code == 200, response.body
    assert data(response)["role"] == "admin"
    return browser


async def broadcast(browser: Browser, payload: Any, **kwargs: Any) -> HTTPResponse:
    return await browser.call("POST", "/api/admin/broadcast", payload, **kwargs)


async def stored_texts(instance: Instance) -> list[str]:
    return [n.text for n in await instance.deps.notices.recent()]  # type: ignore[union-attr]


async def test_admin_broadcast_reaches_subscribers_and_late_joiners(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    admin = await admin_browser(http, instance)
    listener = await ws_open(ws_url(instance, NOTIFICATIONS))
    registry = instance.deps.pubsub.registry  # type: ignore[union-attr]
    await wait_until(lambda: registry.subscribers("broadcast:notifications") == 1)

    response = await broadcast(admin, {"text": "Server restarts at 18:00 ✓", "expire": 60})
    assert response.code == 201, response.body
    sent = data(response)
    assert sent["text"] == "Server restarts at 18:00 ✓" and sent["expire"] == 60
    assert sent["id"]

    notice = json.loads(await next_message(listener))
    assert notice["type"] == "notice"
    assert notice["text"] == "Server restarts at 18:00 ✓"
    assert notice["author"] == "boss"
    assert notice["id"] == sent["id"]

    late = await ws_open(ws_url(instance, NOTIFICATIONS))
    assert json.loads(await next_message(late)) == notice

    stored = await instance.deps.notices.recent()  # type: ignore[union-attr]
    assert [(n.id, n.text, n.author, n.expire) for n in stored] == [
        (sent["id"], "Server restarts at 18:00 ✓", "boss", 60)
    ]
    listener.close()
    late.close()


async def test_expire_zero_is_delivered_but_not_replayed(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    admin = await admin_browser(http, instance)
    listener = await ws_open(ws_url(instance, NOTIFICATIONS))
    registry = instance.deps.pubsub.registry  # type: ignore[union-attr]
    await wait_until(lambda: registry.subscribers("broadcast:notifications") == 1)
    assert (await broadcast(admin, {"text": "fleeting", "expire": 0})).code == 201
    assert json.loads(await next_message(listener))["text"] == "fleeting"

    late = await ws_open(ws_url(instance, NOTIFICATIONS))
    await wait_until(lambda: registry.subscribers("broadcast:notifications") == 2)
    assert (await broadcast(admin, {"text": "kept", "expire": 60})).code == 201
    assert json.loads(await next_message(late))["text"] == "kept"  # not "fleeting" first
    listener.close()
    late.close()


async def test_operator_bearer_token_needs_no_session_or_xsrf(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance(**{"admin.token": TOKEN})
    operator = Browser(http, instance)
    response = await broadcast(
        operator,
        {"text": "from cron", "expire": 60},
        headers={"Authorization": f"Bearer {TOKEN}"},
        xsrf=False,
    )
    assert response.code == 201, response.body
    assert operator.cookies == {}
    notices = await instance.deps.notices.recent()  # type: ignore[union-attr]
    assert [(n.text, n.author) for n in notices] == [("from cron", "operator")]


@pytest.mark.parametrize(
    ("configured", "sent"),
    [
        pytest.param(TOKEN, TOKEN[:-1] + "X", id="wrong-token"),
        pytest.param(TOKEN, TOKEN + "X", id="longer-token"),
        pytest.param(TOKEN, TOKEN.upper(), id="case-changed"),
        pytest.param("", TOKEN, id="no-token-configured"),
        pytest.param("", "anything", id="no-token-configured-any"),
    ],
)
async def test_bad_bearer_is_401(
    make_instance: MakeInstance, http: AsyncHTTPClient, configured: str, sent: str
) -> None:
    instance = await make_instance(**{"admin.token": configured})
    operator = Browser(http, instance)
    response = await broadcast(
        operator,
        {"text": "sneaky", "expire": 60},
        headers={"Authorization": f"Bearer {sent}"},
        xsrf=False,
    )
    assert_error(response, 401, "bad_token")
    assert await stored_texts(instance) == []


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer   ", f"Basic {TOKEN}", TOKEN])
async def test_other_authorization_headers_are_not_operator_tokens(
    make_instance: MakeInstance, http: AsyncHTTPClient, authorization: str
) -> None:
    """Anything but ``Bearer <token>`` falls back to the session path: XSRF is checked."""
    instance = await make_instance(**{"admin.token": TOKEN})
    response = await broadcast(
        Browser(http, instance),
        {"text": "sneaky", "expire": 60},
        headers={"Authorization": authorization},
        xsrf=False,
    )
    assert_error(response, 403, "xsrf")
    assert await stored_texts(instance) == []


async def test_bad_bearer_is_401_even_with_an_admin_session(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance(**{"admin.token": TOKEN})
    admin = await admin_browser(http, instance)
    response = await broadcast(
        admin, {"text": "mixed", "expire": 60}, headers={"Authorization": "Bearer nope"}
    )
    assert_error(response, 401, "bad_token")
    assert await stored_texts(instance) == []


async def test_non_admin_user_is_403(make_instance: MakeInstance, http: AsyncHTTPClient) -> None:
    instance = await make_instance(**{"admin.token": TOKEN})
    user = Browser(http, instance)
    assert (await user.register("player")).code == 201
    assert_error(await broadcast(user, {"text": "hi", "expire": 60}), 403, "not_admin")
    assert await stored_texts(instance) == []


async def test_anonymous_is_401_with_xsrf_and_403_without(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    """XSRF is checked first (403 ``xsrf``); past it, no session is 401 ``not_signed_in``."""
    instance = await make_instance(**{"admin.token": TOKEN})
    anonymous = Browser(http, instance)
    with_xsrf = await broadcast(anonymous, {"text": "hi", "expire": 60})
    assert_error(with_xsrf, 401, "not_signed_in")
    without_xsrf = await broadcast(anonymous, {"text": "hi", "expire": 60}, xsrf=False)
    assert_error(without_xsrf, 403, "xsrf")
    assert await stored_texts(instance) == []


async def test_admin_session_still_needs_xsrf(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    admin = await admin_browser(http, instance)
    response = await broadcast(admin, {"text": "csrf", "expire": 60}, xsrf=False)
    assert_error(response, 403, "xsrf")
    assert await stored_texts(instance) == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"expire": 60}, "text", id="no-text"),
        pytest.param({"text": "", "expire": 60}, "text", id="empty"),
        pytest.param({"text": "   ", "expire": 60}, "text", id="blank"),
        pytest.param({"text": "x" * 1001, "expire": 60}, "text", id="1001-chars"),
        pytest.param({"text": 42, "expire": 60}, "text", id="number"),
        pytest.param({"text": ["hi"], "expire": 60}, "text", id="list"),
        pytest.param({"text": "hi", "expire": -1}, "expire", id="negative"),
        pytest.param({"text": "hi", "expire": "x"}, "expire", id="string"),
        pytest.param({"text": "hi", "expire": "60"}, "expire", id="numeric-string"),
        pytest.param({"text": "hi", "expire": 10**9}, "expire", id="huge"),
        pytest.param({"text": "hi", "expire": 1.5}, "expire", id="float"),
        pytest.param({"text": "hi", "expire": True}, "expire", id="bool"),
        pytest.param({"text": "hi", "expire": None}, "expire", id="null"),
    ],
)
async def test_invalid_notice_is_400_with_field(
    make_instance: MakeInstance, http: AsyncHTTPClient, payload: dict[str, Any], field: str
) -> None:
    instance = await make_instance(**{"admin.token": TOKEN})
    admin = await admin_browser(http, instance)
    assert_error(await broadcast(admin, payload), 400, "invalid", field)
    operator = Browser(http, instance)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert_error(await broadcast(operator, payload, headers=bearer, xsrf=False), 400, "invalid")
    assert await stored_texts(instance) == []


async def test_longest_notice_and_default_expire(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    admin = await admin_browser(http, instance)
    response = await broadcast(admin, {"text": "x" * 1000})
    assert response.code == 201, response.body
    assert data(response)["expire"] == 3600
    assert await stored_texts(instance) == ["x" * 1000]


@pytest.mark.parametrize(
    "body",
    [b"text=hi", b'["hi", 60]', b"x" * (64 * 1024 + 1)],
    ids=["form", "array", "over-64KiB"],
)
async def test_malformed_broadcast_body_is_400(
    make_instance: MakeInstance, http: AsyncHTTPClient, body: bytes
) -> None:
    instance = await make_instance()
    admin = await admin_browser(http, instance)
    response = await admin.call("POST", "/api/admin/broadcast", body=body)
    assert response.code == 400
    assert data(response)["error"] in ("bad_json", "too_large")
    assert await stored_texts(instance) == []
