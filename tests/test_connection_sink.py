"""The fan-out sink on a real socket pair: direct writes, order, the replay hold, overflow."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import orjson
import pytest
from tornado.iostream import IOStream

from app.connections import MAX_HELD_FRAMES, Connection
from app.frames import encode_frame
from app.handlers.game_socket import EventGate


class Owner:
    """Records what the connection asked its handler to do."""

    def __init__(self) -> None:
        self.closed: list[tuple[int | None, str | None]] = []

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closed.append((code, reason))


class Protocol:
    server_terminated = False


@pytest.fixture
async def pair() -> AsyncIterator[tuple[IOStream, socket.socket]]:
    ours, theirs = socket.socketpair()
    stream = IOStream(ours)
    yield stream, theirs
    stream.close()
    theirs.close()


def frames(*payloads: bytes) -> bytes:
    return b"".join(encode_frame(p) for p in payloads)


def read_exactly(sock: socket.socket, size: int) -> bytes:
    sock.settimeout(5)
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


async def test_frames_arrive_in_order(pair: tuple[IOStream, socket.socket]) -> None:
    stream, peer = pair
    conn = Connection(Owner(), stream, Protocol(), max_outgoing_bytes=1 << 20)  # type: ignore[arg-type]
    payloads = [f"m{i}".encode() for i in range(100)]
    for payload in payloads:
        conn.deliver(encode_frame(payload), payload)
    expected = frames(*payloads)
    assert read_exactly(peer, len(expected)) == expected


async def test_replay_goes_first_and_never_twice(pair: tuple[IOStream, socket.socket]) -> None:
    stream, peer = pair
    conn = Connection(Owner(), stream, Protocol(), max_outgoing_bytes=1 << 20)  # type: ignore[arg-type]
    conn.held = []
    for live in (b"v2", b"v3"):  # published while the replay was being read
        conn.deliver(encode_frame(live), live)
    conn.release([b"v1", b"v3"])  # kept messages read after subscribing: v3 also came live
    conn.deliver(encode_frame(b"v4"), b"v4")
    expected = frames(b"v1", b"v2", b"v3", b"v4")
    assert read_exactly(peer, len(expected)) == expected


async def test_echo_filter_skips_own_message(pair: tuple[IOStream, socket.socket]) -> None:
    stream, peer = pair
    conn = Connection(Owner(), stream, Protocol(), max_outgoing_bytes=1 << 20)  # type: ignore[arg-type]
    conn.echo_filter = b"mine"
    for payload in (b"mine", b"theirs"):
        conn.deliver(encode_frame(payload), payload)
    expected = frames(b"theirs")
    assert read_exactly(peer, len(expected)) == expected


async def test_overflow_closes_1013_and_stops_writing(pair: tuple[IOStream, socket.socket]) -> None:
    stream, _peer = pair  # the peer never reads
    owner = Owner()
    slow: list[int] = []
    conn = Connection(
        owner,
        stream,
        Protocol(),  # type: ignore[arg-type]
        max_outgoing_bytes=64 * 1024,
        on_slow_close=lambda: slow.append(1),
    )
    payload = b"x" * 10_000
    frame = encode_frame(payload)
    for _ in range(1000):
        conn.deliver(frame, payload)
        assert stream._write_buffer is not None
        assert len(stream._write_buffer) <= 64 * 1024
    assert owner.closed == [(1013, "client too slow")]
    assert slow == [1]
    assert not conn.open


async def test_a_socket_that_never_resumes_is_closed_once_too_much_is_held(
    pair: tuple[IOStream, socket.socket],
) -> None:
    stream, _peer = pair
    owner = Owner()
    conn = Connection(owner, stream, Protocol(), max_outgoing_bytes=1 << 20)  # type: ignore[arg-type]
    conn.held = []  # waiting for its replay, like a game socket before "resume"
    payload = b"state"
    frame = encode_frame(payload)
    for _ in range(MAX_HELD_FRAMES):
        conn.deliver(frame, payload)
    assert owner.closed == [] and len(conn.held) == MAX_HELD_FRAMES
    conn.deliver(frame, payload)
    assert owner.closed == [(1013, "client too slow")]
    assert len(conn.held) == MAX_HELD_FRAMES


def state(seq: int, *, replay: bool = False) -> bytes:
    return orjson.dumps({"type": "state", "game": "g", "seq": seq, "replay": replay})


def chat(n: int) -> bytes:
    return orjson.dumps({"type": "chat", "game": "g", "n": n, "text": "hi"})


async def test_gate_drops_live_events_the_replay_already_sent(
    pair: tuple[IOStream, socket.socket],
) -> None:
    """A state published just after the replay read the log (or late through Redis)
    arrives live once the hold has ended: the gate keeps it from reaching the client twice."""
    stream, peer = pair
    conn = Connection(Owner(), stream, Protocol(), max_outgoing_bytes=1 << 20)  # type: ignore[arg-type]
    gate = EventGate()
    conn.gate = gate
    conn.held = []
    conn.deliver(encode_frame(state(3)), state(3))  # live, while the replay is read
    gate.rewind(1, 0)
    conn.release([state(2, replay=True), state(3, replay=True), chat(1)])
    for late in (state(3), state(2), chat(1), b"ws4redis text", state(4), chat(2), chat(2)):
        conn.deliver(encode_frame(late), late)
    expected = frames(
        state(2, replay=True), state(3, replay=True), chat(1), b"ws4redis text", state(4), chat(2)
    )
    assert read_exactly(peer, len(expected)) == expected
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(1)


async def test_a_second_resume_replays_from_what_the_client_has(
    pair: tuple[IOStream, socket.socket],
) -> None:
    """A client that saw seq jump (a live state lost while Redis was down) resumes on the
    same socket: the replay from its ``since`` passes the gate again."""
    stream, peer = pair
    conn = Connection(Owner(), stream, Protocol(), max_outgoing_bytes=1 << 20)  # type: ignore[arg-type]
    gate = EventGate()
    conn.gate = gate
    for live in (state(0), state(1), state(3)):  # seq 2 was lost
        conn.deliver(encode_frame(live), live)
    conn.held = []
    gate.rewind(1, 0)
    conn.release([state(2, replay=True), state(3, replay=True)])
    expected = frames(state(0), state(1), state(3), state(2, replay=True), state(3, replay=True))
    assert read_exactly(peer, len(expected)) == expected
