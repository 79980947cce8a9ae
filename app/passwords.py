"""bcrypt hashing off the event loop, for any password length.

bcrypt reads at most 72 bytes. Rather than truncate silently (two passwords
sharing 72 bytes would both match) or reject long passphrases, every password
is first reduced to base64(SHA-256(utf-8)): 44 ASCII bytes, no NUL, full entropy
kept. Hashing and checking run in a small thread pool (bcrypt releases the GIL),
never on the IOLoop.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from concurrent.futures import ThreadPoolExecutor

import bcrypt

__all__ = ["PasswordHasher", "prehash"]


def prehash(password: str) -> bytes:
    """The 44-byte input bcrypt actually sees for ``password``."""
    return base64.b64encode(hashlib.sha256(password.encode()).digest())


class PasswordHasher:
    """bcrypt at ``rounds`` in ``workers`` threads."""

    def __init__(self, *, rounds: int, workers: int = 2) -> None:
        self.rounds = rounds
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bcrypt")
        self._dummy: bytes | None = None

    async def hash(self, password: str) -> bytes:
        salt = bcrypt.gensalt(self.rounds)
        return await self._run(bcrypt.hashpw, prehash(password), salt)

    async def verify(self, password: str, hashed: bytes | None) -> bool:
        """Check ``password``; with ``hashed=None`` burn the same time and say no.

        Unknown users and wrong passwords must look alike, in answer and timing.
        """
        if hashed is None:
            if self._dummy is None:
                self._dummy = await self.hash(secrets.token_urlsafe(16))
            await self._run(bcrypt.checkpw, prehash(password), self._dummy)
            return False
        return bool(await self._run(bcrypt.checkpw, prehash(password), hashed))

    async def _run(self, fn: object, *args: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)  # type: ignore[arg-type]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
