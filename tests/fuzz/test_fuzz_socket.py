"""Socket-level fuzz against a running instance: hostile bytes and frames on many raw
connections while a well-behaved subscriber keeps receiving every broadcast, in order.

The cases come from a seeded generator (fixed count, bounded runtime): random bytes
before and after the handshake, invalid UTF-8 in text frames, fragmented messages with
bad continuations, control frames over 125 bytes, ping floods, 2**63 declared lengths,
unmasked frames, reserved opcodes and RSV bits. Afterwards the server still answers
``/healthz`` and accepts new sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import WebSocketClientConnection

from app.runtime import Instance
from tests.conftest import MakeInstance, http_url, ws_url
from tests.support import masked_frame, raw_websocket, recv, wait_until, ws_open

SEED = 20240611
CASES = 144
PARALLEL = 12
PATH = "/ws/notifications?subscribe-broadcast"
HEARTBEAT = "--heartbeat--"

Case = Callable[[random.Random], bytes]


def frame(payload: bytes, opcode: int, *, fin: bool = True, rsv: int = 0) -> bytes:
    raw = bytearray(masked_frame(payload, opcode, fin=fin))
    raw[0] |= (rsv & 0x7) << 4
    return bytes(raw)


def random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(1, 4096))


def bad_utf8_text(rng: random.Random) -> bytes:
    junk = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80\x80"])
    return frame(b"ok" + junk + rng.randbytes(rng.randint(0, 20)), 0x1)


def bad_continuation(rng: random.Random) -> bytes:
    choice = rng.randint(0, 3)
    if choice == 0:  # continuation with nothing to continue
        return frame(b"orphan", 0x0)
    if choice == 1:  # a new text frame in the middle of a fragmented one
        return frame(b"first", 0x1, fin=False) + frame(b"second", 0x1)
    if choice == 2:  # fragmented text whose parts split a UTF-8 sequence badly
        return frame(b"\xe2\x82", 0x1, fin=False) + frame(b"\x28", 0x0)
    return frame(b"part", 0x1, fin=False) + frame(b"bin", 0x2)


def big_control(rng: random.Random) -> bytes:
    opcode = rng.choice([0x8, 0x9, 0xA])
    return frame(rng.randbytes(rng.randint(126, 2000)), opcode)


def fragmented_control(rng: random.Random) -> bytes:
    return frame(b"ping", rng.choice([0x9, 0xA]), fin=False)


def ping_flood(rng: random.Random) -> bytes:
    return b"".join(frame(rng.randbytes(rng.randint(0, 125)), 0x9) for _ in range(500))


def huge_length(rng: random.Random) -> bytes:
    size = rng.choice([2**63 - 1, 2**63, 2**64 - 1, 2**32, 10**12])
    header = bytes((0x80 | rng.choice([0x1, 0x2]), 0x80 | 127))
    return header + (size % 2**64).to_bytes(8, "big") + b"\x00" * 4 + rng.randbytes(64)


def unmasked(rng: random.Random) -> bytes:
    payload = rng.randbytes(rng.randint(0, 100))
    return bytes((0x81, len(payload))) + payload


def reserved_opcode(rng: random.Random) -> bytes:
    return frame(rng.randbytes(10), rng.choice([0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF]))


def rsv_bits(rng: random.Random) -> bytes:
    return frame(b"hello", rng.choice([0x1, 0x2, 0x9]), rsv=rng.randint(1, 7))


def oversized(rng: random.Random) -> bytes:
    return frame(b"x" * rng.choice([65_537, 200_000]), 0x1)


def truncated(rng: random.Random) -> bytes:
    whole = frame(rng.randbytes(rng.randint(10, 300)), 0x1)
    return whole[: rng.randint(1, len(whole) - 1)]


def bad_close(rng: random.Random) -> bytes:
    payload = rng.choice([b"\x00", b"\x03\xe8\xff\xfe", b"\x00\x00", b"\x03\xed", rng.randbytes(3)])
    return frame(payload, 0x8)


def valid_then_garbage(rng: random.Random) -> bytes:
    return frame(b"--heartbeat--", 0x1) + frame(b"hi", 0x1) + random_bytes(rng)


AFTER_HANDSHAKE: list[Case] = [
    random_bytes,
    bad_utf8_text,
    bad_continuation,
    big_control,
    fragmented_control,
    ping_flood,
    huge_length,
    unmasked,
    reserved_opcode,
    rsv_bits,
    oversized,
    truncated,
    bad_close,
    valid_then_garbage,
]


async def drain(reader: asyncio.StreamReader, timeout: float) -> None:
    """Read what the server sends until it closes, or give up after ``timeout``."""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass


async def before_handshake(port: int, rng: random.Random) -> bytes:
    """Garbage instead of (or inside) an HTTP request: the answer, if any."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if rng.random() < 0.5:
            writer.write(rng.randbytes(rng.randint(1, 2048)) + b"\r\n\r\n")
        else:
            writer.write(
                f"GET {PATH} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n".encode()
                + b"Connection: Upgrade\r\n"
                + b"Sec-WebSocket-Key: "
                + rng.randbytes(rng.randint(0, 40)).replace(b"\r", b"").replace(b"\n", b"")
                + b"\r\nSec-WebSocket-Version: "
                + rng.choice([b"13", b"8", b"\xff", b"99999999999999999999"])
                + b"\r\n\r\n"
            )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(2):
                while chunk := await reader.read(65536):
                    answer += chunk
                    if b"\r\n\r\n" in answer:
                        break
        return answer
    finally:
        writer.close()


async def after_handshake(port: int, case: Case, rng: random.Random) -> None:
    reader, writer = await raw_websocket(port, PATH)
    try:
        writer.write(case(rng))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        await drain(reader, timeout=0.5)
    finally:
        writer.close()


async def next_message(conn: WebSocketClientConnection) -> str | bytes | None:
    while True:
        message = await recv(conn, timeout=10)
        if message != HEARTBEAT:
            return message


async def run_case(instance: Instance, index: int, answers: list[bytes]) -> None:
    rng = random.Random(SEED * 1000 + index)
    if rng.random() < 0.2:
        answers.append(await before_handshake(instance.port, rng))
    else:
        await after_handshake(instance.port, rng.choice(AFTER_HANDSHAKE), rng)


async def test_garbage_on_raw_sockets_never_disturbs_a_subscriber(
    make_instance: MakeInstance,
) -> None:
    instance = await make_instance()
    deps = instance.deps
    assert deps is not None
    good = await ws_open(ws_url(instance, PATH))
    await wait_until(lambda: len(deps.connections) == 1, what="subscriber registered")
    publisher = deps.pubsub.publisher("notifications", broadcast=True)
    sent: list[str] = []
    answers: list[bytes] = []

    async def fuzz() -> None:
        for start in range(0, CASES, PARALLEL):
            batch = range(start, min(start + PARALLEL, CASES))
            await asyncio.gather(*(run_case(instance, i, answers) for i in batch))
            text = f"broadcast {start // PARALLEL}"
            await publisher.publish(text, expire=0)
            sent.append(text)

    await asyncio.wait_for(fuzz(), timeout=120)
    received = [await next_message(good) for _ in sent]
    assert received == sent, "the well-behaved subscriber missed or reordered broadcasts"

    # Garbage before the upgrade gets a 4xx (or nothing), never a 5xx.
    statuses = [answer[9:12] for answer in answers if answer.startswith(b"HTTP/1.1 ")]
    assert all(not status.startswith(b"5") for status in statuses), statuses

    # Every fuzzed connection is gone; the server still serves HTTP and new sockets.
    await wait_until(lambda: len(deps.connections) == 1, timeout=10, what="fuzzed sockets closed")
    health = await AsyncHTTPClient().fetch(http_url(instance, "/healthz"), raise_error=False)
    assert health.code == 200, health.code
    fresh = await ws_open(ws_url(instance, PATH))
    await wait_until(lambda: len(deps.connections) == 2, what="new socket registered")
    await publisher.publish("after the fuzz", expire=0)
    assert await next_message(fresh) == "after the fuzz"
    assert await next_message(good) == "after the fuzz"
    good.close()
    fresh.close()
