"""Password hashing (argon2 through pwdlib) and the checks a new password must pass."""

from __future__ import annotations

from pwdlib import PasswordHash
from web.errors import WeakPassword

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024  # hashing is deliberately slow: an unbounded input is a denial of service

_hasher = PasswordHash.recommended()
# Verifying against this when the person has no password costs the same time as a real check,
# so a timing difference tells nobody which usernames exist.
_DUMMY = _hasher.hash("not-a-password-of-anyone")


def check_new(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise WeakPassword(f"a password has at most {MAX_PASSWORD_CHARS} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_new(password))


def verify(password: str, stored: str | None) -> bool:
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    if stored is None:
        _hasher.verify(password, _DUMMY)
        return False
    try:
        return _hasher.verify(password, stored)
    except Exception:  # noqa: BLE001 - a damaged hash lets nobody in
        return False
