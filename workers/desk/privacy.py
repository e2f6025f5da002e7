"""People's data is theirs: export everything held about an enquirer, erase it, and keep nothing longer than needed.

Operations for the command line (and the web later): each checks the actor's role (``privacy.export`` and
``privacy.erase`` are for admins), does its work through ``storage.privacy``, deletes the files that no row
needs any more from the raw archive, and writes an audit entry — who, when, what — that names the person
only by their pseudonym. The desk's statistics do not change: no row is deleted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from config.desk import DeskConfig
from intake.archive import RawArchive
from storage import audit
from storage import privacy as store
from storage.models import utcnow
from workers.desk.permissions import Staff
from workers.errors import Forbidden, PrivacyRefused


@dataclass(frozen=True)
class ErasureReport:
    pseudonym: str
    counts: dict[str, int]


class Privacy:
    def __init__(self, engine: Engine, desk: DeskConfig, archive: RawArchive, secret: bytes, *, prefix: str = "HD",
                 surface: str = "cli") -> None:
        self.engine = engine
        self.staff = Staff(desk)
        self.archive = archive
        self.secret = secret
        self.prefix = prefix
        self.surface = surface

    def pseudonym(self, address: str) -> str:
        """The same person always gets the same pseudonym; nobody can turn it back into the address."""
        digest = hmac.new(self.secret, f"person:{address.strip().lower()}".encode(), hashlib.sha256).hexdigest()
        return f"erased-{digest[:16]}"

    def _authorise(self, by: str | None, action: str, address: str) -> str:
        try:
            return self.staff.authorise(by, action).key
        except Forbidden as exc:
            audit.record(self.engine, f"refused:{self.surface}:{by}:{action}:{uuid.uuid4().hex}", actor=by or "nobody",
                         surface=self.surface, action=action, target=self.pseudonym(address), outcome="refused",
                         detail={"reason": exc.reason})
            raise PrivacyRefused(exc.reason) from exc

    def _person(self, address: str) -> store.Person:
        person = store.find_person(self.engine, address)
        if person is None:
            raise PrivacyRefused(f"nobody with the address {address!r} is known to the desk")
        return person

    def export(self, address: str, *, by: str | None, with_files: bool = True) -> dict[str, Any]:
        """Everything held about the person at ``address`` (raw mail and attachments base64-encoded)."""
        actor = self._authorise(by, "privacy.export", address)
        person = self._person(address)
        data = store.export(self.engine, person, self.prefix)
        if with_files:
            data["files"] = self._files(data)
        audit.record(self.engine, f"privacy:export:{uuid.uuid4().hex}", actor=actor, surface=self.surface, action="privacy.export",
                     target=self.pseudonym(address), outcome="done",
                     detail={"messages": len(data["messages"]), "tickets": len(data["tickets"])})
        return {"exported_at": utcnow(), **data}

    def _files(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        refs: dict[str, str] = {}
        for message in data["messages"]:
            if message.get("raw_ref"):
                refs[message["raw_ref"]] = "raw mail"
            for attachment in message.get("attachments") or []:
                if isinstance(attachment, dict) and attachment.get("sha256") and attachment.get("stored"):
                    refs[attachment["sha256"]] = f"attachment {attachment.get('filename') or ''}".strip()
        files = []
        for ref, what in sorted(refs.items()):
            try:
                content = self.archive.get(ref)
            except KeyError:
                continue
            files.append({"sha256": ref, "what": what, "size": len(content), "base64": base64.b64encode(content).decode("ascii")})
        return files

    def erase(self, address: str, *, by: str | None) -> ErasureReport:
        """Remove or pseudonymise everything of the person at ``address``; the desk's figures stay as they were."""
        actor = self._authorise(by, "privacy.erase", address)
        person = self._person(address)
        pseudonym = self.pseudonym(address)
        done = store.erase(self.engine, person, pseudonym)
        deleted = sum(self.archive.delete(ref) for ref in sorted(done.files))
        counts = {**done.counts(), "files_deleted": deleted}
        audit.record(self.engine, f"privacy:erase:{uuid.uuid4().hex}", actor=actor, surface=self.surface, action="privacy.erase",
                     target=pseudonym, outcome="done", detail=counts)
        return ErasureReport(pseudonym, counts)

    def expire(self, now: datetime, days: int) -> dict[str, int]:
        """Retention: bodies and raw mail of tickets closed more than ``days`` ago (and old automated mail, settled quarantine)."""
        done = store.expire(self.engine, now - timedelta(days=days))
        deleted = sum(self.archive.delete(ref) for ref in sorted(done.files))
        return {"messages": done.messages, "quarantined": done.quarantined, "files_deleted": deleted}
