"""The desk's secret: keys ticket references (and, later, signs web sessions). Set, or made once and kept.

``HELPDESK_SECRET_KEY`` (at least 32 characters) wins; without it a random secret is made on first use
in ``DATA_DIR/secret.key`` (mode 0600) and read by every process sharing that folder. Machines that do
not share a data folder (production) must share ``HELPDESK_SECRET_KEY``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from config.errors import SettingsError
from config.settings import Settings

SECRET_FILE = "secret.key"


def desk_secret(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode("utf-8")
    return _file_secret(settings.data_dir / SECRET_FILE)


def _file_secret(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_bytes().strip()
        if len(value) < 32:
            raise SettingsError(f"{path} holds no usable secret (remove it to make a new one, or set HELPDESK_SECRET_KEY)") from None
        return value
    value = secrets.token_urlsafe(48).encode("ascii")
    with os.fdopen(fd, "wb") as handle:
        handle.write(value + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    return value
