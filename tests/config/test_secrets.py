"""Secrets stay out of what is shown: logs, health records, status, error texts."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr

from config.errors import SettingsError
from config.secrets import REDACTED, _file_secret, command_for_display, redact, secret_values
from config.settings import Settings
from ops.logs import configure_logging


def test_given_settings_with_secrets_then_every_one_of_them_is_known_and_redacted(tmp_path) -> None:  # noqa: ANN001
    settings = Settings(data_dir=tmp_path, imap_password="mailbox-pass", slack_bot_token="xoxb-123-456",
                        imap_oauth2_token_command="/opt/bin/get-token --tenant=desk --client-secret=TopSecret99",
                        redis_url="redis://:redis%2Fpass@cache.internal:6379/0", ops_token=SecretStr("o" * 20))
    values = secret_values(settings)
    text = ("login mailbox-pass with xoxb-123-456 via /opt/bin/get-token --tenant=desk --client-secret=TopSecret99 "
            "on redis redis/pass and ooooooooooooooooooooo")
    shown = redact(text, values)
    for secret in ("mailbox-pass", "xoxb-123-456", "TopSecret99", "redis/pass", "o" * 20):
        assert secret not in shown
    assert shown.count(REDACTED) >= 5


@pytest.mark.parametrize(("command", "shown"), [
    ("/opt/bin/get-token --client-secret=abc", f"get-token {REDACTED}"),
    ("get-token", "get-token"),
    ("'unterminated", "'unterminated"),
    ("", "(empty command)"),
])
def test_a_command_is_shown_by_its_program_only(command: str, shown: str) -> None:
    assert command_for_display(command) == shown


def test_given_logging_with_secrets_when_an_event_carries_one_then_the_line_does_not(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO", ["TopSecret99"])
    try:
        structlog.get_logger("t").warning("token command failed", error=RuntimeError("exit 1: --client-secret=TopSecret99"),
                                          detail="argv --client-secret=TopSecret99")
    finally:
        configure_logging()
    line = capsys.readouterr().err
    assert "TopSecret99" not in line
    assert line.count(REDACTED) == 2


def _secret_in(folder: str) -> bytes:
    return _file_secret(Path(folder) / "secret.key")


def test_given_processes_starting_together_on_a_new_data_folder_then_all_read_the_one_secret_made(tmp_path) -> None:  # noqa: ANN001
    # A worker's forked children, the web and the worker: each makes the secret if there is none. The one that lost the
    # race used to read the winner's file before it was written ("holds no usable secret") and stop.
    for attempt in range(5):
        folder = tmp_path / f"data-{attempt}"
        with multiprocessing.get_context("fork").Pool(8) as pool:
            values = pool.map(_secret_in, [str(folder)] * 32)
        assert len(set(values)) == 1
        assert (folder / "secret.key").read_bytes().strip() == values[0]
        assert [p.name for p in folder.iterdir()] == ["secret.key"]  # no draft left behind


def test_given_a_secret_file_too_short_then_it_is_refused_not_replaced(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "secret.key").write_bytes(b"short\n")
    with pytest.raises(SettingsError, match="holds no usable secret"):
        _secret_in(str(tmp_path))
    assert (tmp_path / "secret.key").read_bytes() == b"short\n"


def test_given_a_new_secret_then_its_file_does_not_exist_until_it_is_written_whole(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    # Deterministic form of the race above: when the secret's bytes are flushed to disk, no reader can yet find the file
    import os  # noqa: PLC0415

    seen: list[bool] = []
    flush = os.fsync

    def watching(fd: int) -> None:
        seen.append((tmp_path / "secret.key").exists())
        flush(fd)

    monkeypatch.setattr(os, "fsync", watching)
    value = _secret_in(str(tmp_path))
    assert seen[0] is False  # the draft's flush, before the link
    assert (tmp_path / "secret.key").read_bytes().strip() == value


def test_given_a_file_system_without_hard_links_then_the_secret_is_made_in_place(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import errno  # noqa: PLC0415
    import os  # noqa: PLC0415

    def refused(*_args: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")  # FAT, some SMB shares

    monkeypatch.setattr(os, "link", refused)
    value = _secret_in(str(tmp_path))
    assert len(value) >= 32
    assert (tmp_path / "secret.key").read_bytes().strip() == value
    assert oct((tmp_path / "secret.key").stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]
    assert _secret_in(str(tmp_path)) == value
