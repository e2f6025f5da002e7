"""The desk's secret, and keeping every secret out of what is shown.

The desk's secret keys ticket references (and, later, signs web sessions). Set, or made once and kept.

``HELPDESK_SECRET_KEY`` (at least 32 characters) wins; without it a random secret is made on first use
in ``DATA_DIR/secret.key`` (mode 0600) and read by every process sharing that folder. Machines that do
not share a data folder (production) must share ``HELPDESK_SECRET_KEY``.

``secret_values`` lists every secret the settings hold; ``redact`` takes them out of a text before it is
logged, stored in a health record or printed; ``command_for_display`` shows a configured command by its
program's name only.
"""

from __future__ import annotations

import errno
import os
import secrets
import shlex
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from config.errors import SettingsError
from config.settings import GROUPS, Settings

SECRET_FILE = "secret.key"


def desk_secret(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode("utf-8")
    return _file_secret(settings.data_dir / SECRET_FILE)


def _file_secret(path: Path) -> bytes:
    """The secret in ``path``, made there first if there is none. The file appears whole or not at all (written under
    a name of its own, then linked into place), so processes starting together on a new data folder — a worker's
    forked children, the web and the worker — all read the one secret the first of them made. Where the folder's
    file system has no hard links (FAT, some network shares), the file is created in place, and a process that
    finds it still empty waits a moment for its maker to write it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        value = secrets.token_urlsafe(48).encode("ascii")
        if _made(path, value):
            return value
    deadline = time.monotonic() + SECRET_WAIT_SECONDS
    while len(value := path.read_bytes().strip()) < 32 and time.monotonic() < deadline:
        time.sleep(0.02)
    if len(value) < 32:
        raise SettingsError(f"{path} holds no usable secret (remove it to make a new one, or set HELPDESK_SECRET_KEY)")
    return value


SECRET_WAIT_SECONDS = 1.0  # how long a file found without a secret is given to be written (no hard links: see above)
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS}


def _made(path: Path, value: bytes) -> bool:
    """Whether this process made ``path`` holding ``value`` (False: another one made it first)."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        _write_new(draft, value)
        try:
            os.link(draft, path)  # atomic, and refuses to replace a secret another process made meanwhile
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            try:
                _write_new(path, value)  # no hard links here: made in place, found empty for a moment
            except FileExistsError:
                return False
    finally:
        draft.unlink(missing_ok=True)
    _sync_folder(path.parent)
    return True


def _write_new(path: Path, value: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(value + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def _sync_folder(folder: Path) -> None:
    """The new name made durable: a secret already used must not vanish with a power cut (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- redaction ------------------------------------------------------------------------------------
REDACTED = "[redacted]"
# the groups mark their secret fields (config.settings._secret); two secrets belong to no group
_SECRET_FIELDS = (*(name for group in GROUPS.values() for name in group.secret_flat_names()), "secret_key", "ops_token")
MIN_SECRET_CHARS = 4  # shorter values would redact ordinary words


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold, as it could appear in text: passwords, tokens, the token command's
    arguments, and passwords inside service URLs. Longest first, so a secret containing another goes whole."""
    values: set[str] = set()
    for name in _SECRET_FIELDS:
        value = getattr(settings, name, None)
        if value is not None:
            values.add(value.get_secret_value() if isinstance(value, SecretStr) else str(value))
    if settings.imap_oauth2_token_command:
        for arg in _command_words(settings.imap_oauth2_token_command)[1:]:
            values.add(arg)
            if "=" in arg:
                values.add(arg.split("=", 1)[1])
    for url in (settings.redis_url, settings.database_url):
        password = urlsplit(url or "").password
        if password:
            values.update({password, unquote(password)})
    return sorted((v for v in values if len(v) >= MIN_SECRET_CHARS), key=len, reverse=True)


def redact(text: str, secrets_: list[str]) -> str:
    for value in secrets_:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def command_for_display(command: str) -> str:
    """A configured command as it may be shown: the program's name, never its arguments."""
    words = _command_words(command)
    if not words:
        return "(empty command)"
    program = os.path.basename(words[0])
    return f"{program} {REDACTED}" if len(words) > 1 else program


def _command_words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()
