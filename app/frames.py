"""WebSocket frame encoding for the fan-out path (RFC 6455 §5.2, server side).

Pure functions: a message is encoded once and the same bytes are written to
every subscriber. Server frames are never masked and we never negotiate
compression, so one encoding is valid for every connection.
"""

from __future__ import annotations

import struct

__all__ = ["OP_BINARY", "OP_TEXT", "encode_frame", "frame_for_payload"]

OP_TEXT = 0x1
OP_BINARY = 0x2
_FIN = 0x80
_PACK_16 = struct.Struct("!BBH").pack
_PACK_64 = struct.Struct("!BBQ").pack


def encode_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """Return one unfragmented, unmasked frame carrying ``payload``."""
    size = len(payload)
    first = _FIN | opcode
    if size < 126:
        return bytes((first, size)) + payload
    if size <= 0xFFFF:
        return _PACK_16(first, 126, size) + payload
    return _PACK_64(first, 127, size) + payload


def frame_for_payload(payload: bytes) -> bytes:
    """Encode ``payload`` as a text frame, or binary when it is not UTF-8.

    ws4redis delivers messages verbatim as text; a payload that is not valid
    UTF-8 would make browsers fail the connection, so it goes out as binary.
    """
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return encode_frame(payload, OP_BINARY)
    return encode_frame(payload, OP_TEXT)
