"""Web sign-in credentials: staff password hashes and API bearer tokens.

Only hashes are stored. A password hash is made by the caller (argon2, ``web.auth``); a bearer token is
random and stored as its SHA-256, so a copy of the database lets nobody in. Tokens are looked up by
that hash (a unique key) and can be revoked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update

from storage.models import API_TOKEN as TOKEN
from storage.models import CREDENTIAL, utcnow
from storage.upsert import on_conflict


def set_password_hash(engine: Engine, staff_key: str, password_hash: str, at: datetime | None = None) -> None:
    """Store (or replace) the person's password hash."""
    at = at or utcnow()
    with engine.begin() as c:
        c.execute(on_conflict(c, CREDENTIAL, ["staff_key"], update={"password_hash": password_hash, "updated_at": at})
                  .values(staff_key=staff_key, password_hash=password_hash, updated_at=at))


def password_hash(engine: Engine, staff_key: str) -> str | None:
    with engine.connect() as c:
        return c.execute(select(CREDENTIAL.c.password_hash).where(CREDENTIAL.c.staff_key == staff_key)).scalar()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    id: int
    staff_key: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


def add_token(engine: Engine, staff_key: str, token: str, name: str = "", at: datetime | None = None) -> int:
    with engine.begin() as c:
        return c.execute(TOKEN.insert().values(token_hash=token_digest(token), staff_key=staff_key, name=name[:128],
                                               created_at=at or utcnow()).returning(TOKEN.c.id)).scalar_one()


def token_owner(engine: Engine, token: str, at: datetime | None = None) -> str | None:
    """The staff key a live token belongs to (its use is recorded), or None."""
    with engine.begin() as c:
        row = c.execute(select(TOKEN.c.id, TOKEN.c.staff_key).where(TOKEN.c.token_hash == token_digest(token),
                                                                    TOKEN.c.revoked_at.is_(None))).first()
        if row is None:
            return None
        c.execute(update(TOKEN).where(TOKEN.c.id == row.id).values(last_used_at=at or utcnow()))
        return row.staff_key


def tokens(engine: Engine, staff_key: str | None = None) -> list[TokenInfo]:
    with engine.connect() as c:
        stmt = select(TOKEN).order_by(TOKEN.c.id)
        if staff_key is not None:
            stmt = stmt.where(TOKEN.c.staff_key == staff_key)
        return [TokenInfo(r.id, r.staff_key, r.name, r.created_at, r.last_used_at, r.revoked_at is not None) for r in c.execute(stmt)]


def revoke_token(engine: Engine, token_id: int, at: datetime | None = None) -> bool:
    with engine.begin() as c:
        result = c.execute(update(TOKEN).where(TOKEN.c.id == token_id, TOKEN.c.revoked_at.is_(None)).values(revoked_at=at or utcnow()))
        return result.rowcount > 0
