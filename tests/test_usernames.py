"""Username and password rules (pure)."""

from __future__ import annotations

import pytest

from app.errors import Invalid
from app.passwords import prehash
from app.services.accounts import normalize_username, validate_password


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice", "alice"),
        ("Bob_the-2nd", "Bob_the-2nd"),
        ("  carol  ", "carol"),
        ("\uff41\uff4c\uff49\uff43\uff45", "alice"),  # fullwidth letters: NFKC
        ("x" * 32, "x" * 32),
    ],
)
def test_valid_usernames(raw: str, expected: str) -> None:
    assert normalize_username(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "ab", "x" * 33, "a:b", "a b", "al/ice", "ali\u0000ce", "alïce", "a" * 10_000, 5, None],
)
def test_invalid_usernames(raw: object) -> None:
    with pytest.raises(Invalid) as caught:
        normalize_username(raw)
    assert caught.value.field == "username"


@pytest.mark.parametrize("raw", ["", "short", "x" * 1025, None, 12345678])
def test_invalid_passwords(raw: object) -> None:
    with pytest.raises(Invalid):
        validate_password(raw)


def test_prehash_keeps_every_byte_and_fits_bcrypt() -> None:
    long_a = "a" * 72 + "1"
    long_b = "a" * 72 + "2"
    assert prehash(long_a) != prehash(long_b)  # bcrypt alone would see them as equal
    assert len(prehash("x" * 1024)) == 44 and b"\x00" not in prehash("\x00" * 10)
