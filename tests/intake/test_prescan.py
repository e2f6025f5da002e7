"""The raw-bytes bounds: each hostile mail is rejected fast with its reason; every real mail passes; mail at a limit still parses."""

from __future__ import annotations

import base64
import time
from dataclasses import asdict, fields
from datetime import datetime, timezone
from pathlib import Path

import pytest

from config.settings import Settings
from intake.errors import RejectedInput
from intake.mime import parse_email
from intake.prescan import PrescanLimits, measure, prescan
from tests.conftest import CORPUS
from tests.intake import hostile
from tests.intake.hostile import HOSTILE, Hostile

ROOT = Path(__file__).resolve().parents[2]
REAL_MAIL_FOLDERS = (CORPUS, ROOT / "tests" / "data" / "imap-corpus", ROOT / "ops" / "samples" / "enquiries")
PRESCAN_REJECTS = [h for h in HOSTILE if "message" not in h.reasons and h.name != "binary_garbage"]


def _real_mail() -> list[Path]:
    files = [p for folder in REAL_MAIL_FOLDERS for p in sorted(folder.rglob("*")) if p.is_file()]
    return [p for p in files if p.suffix.lower() not in {".md", ".json"} and not p.name.startswith("LICENSE")]


def _reason(raw: bytes, limits: PrescanLimits = PrescanLimits()) -> RejectedInput:
    with pytest.raises(RejectedInput) as caught:
        prescan(raw, limits)
    return caught.value


@pytest.mark.parametrize("mail", PRESCAN_REJECTS, ids=lambda h: h.name)
def test_each_hostile_mail_is_rejected_quickly_with_its_reason(mail: Hostile) -> None:
    raw = mail.build()
    started = time.perf_counter()
    rejected = _reason(raw)
    assert time.perf_counter() - started < 0.5
    assert rejected.reason in mail.reasons
    assert "exceeds the limit of" in rejected.detail


def test_the_detail_names_the_figure_and_the_limit() -> None:
    assert _reason(hostile.encoded_words_subject(400)).detail == "encoded words in subject 400 exceeds the limit of 300"
    assert _reason(hostile.many_parameters(150)).detail == "parameters of content-type 151 exceeds the limit of 100"  # charset and 150 more
    assert _reason(hostile.huge_header_line(100_000)).detail == "header line length in bytes 100,008 exceeds the limit of 65,536"


def test_every_real_mail_passes_with_room_to_spare() -> None:
    files = _real_mail()
    assert len(files) > 800  # the sisimai bounces, the other corpora, our own samples
    defaults, peaks = PrescanLimits(), {}
    for path in files:
        raw = path.read_bytes()
        prescan(raw)
        for name, value in asdict(measure(raw)).items():
            peaks[name] = max(peaks.get(name, 0), value)
    for name, value in peaks.items():
        assert value * 4 <= getattr(defaults, f"max_{name}"), f"{name}: a real mail reaches {value}"


@pytest.mark.parametrize(("build", "limits"), [
    (lambda: hostile.deep_multipart(30), PrescanLimits()),  # depth 30: the deepest allowed
    (lambda: hostile.deep_message_rfc822(30), PrescanLimits()),
    (lambda: hostile.nested_comments_from(20), PrescanLimits()),
    (lambda: hostile.encoded_words_subject(300), PrescanLimits()),
    (lambda: hostile.many_parameters(99), PrescanLimits()),
    (lambda: hostile.many_address_comments(999), PrescanLimits()),
    (lambda: hostile.many_parts(999), PrescanLimits()),
    (lambda: hostile.many_headers(1900), PrescanLimits()),
], ids=["depth", "rfc822-depth", "comments", "encoded-words", "parameters", "addresses", "parts", "headers"])
def test_mail_at_each_limit_passes_and_parses_in_reasonable_time(build, limits: PrescanLimits) -> None:  # noqa: ANN001
    raw = build()
    prescan(raw, limits)
    started = time.perf_counter()
    parsed = parse_email(raw, received_at=datetime.now(timezone.utc), source="test", raw_ref=None)
    assert parsed.message.sender.address
    assert time.perf_counter() - started < 5  # the limits keep the stdlib's quadratic paths short


def test_a_large_ordinary_mail_is_scanned_in_linear_time() -> None:
    # Given a 28 MB mail: a text body and a base64 attachment (what prescan must only skim)
    attachment = base64.encodebytes(bytes(range(256)) * (20 * 1024 * 1024 // 256))
    raw = (b"From: a@b.example\r\nSubject: data\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n"
           b"--zz\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--zz\r\nContent-Type: application/zip\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + attachment + b"--zz--\r\n")
    started = time.perf_counter()
    prescan(raw)
    assert time.perf_counter() - started < 0.5
    assert measure(raw).mime_parts == 2


def test_raw_size_is_bounded() -> None:
    assert _reason(b"x" * 2000, PrescanLimits(max_raw_bytes=1000)).reason == "too_large"


def test_lines_like_boundaries_in_a_body_are_not_parts() -> None:
    # Given a text attachment (an SQL dump) full of "--" lines, and a delimiter of another boundary
    dump = b"".join(b"-- comment %d\r\nSELECT 1;\r\n" % i for i in range(5000))
    raw = (b"From: a@b.example\r\nSubject: dump\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
           b"--outer\r\nContent-Type: text/plain\r\n\r\nhello\r\n--other\r\n--outerX\r\n"
           b"--outer\r\nContent-Type: text/plain; name=dump.sql\r\n\r\n" + dump + b"--outer--\r\n")
    prescan(raw)
    assert measure(raw).mime_parts == 2


def test_a_flood_of_near_miss_delimiters_is_cut_short() -> None:
    raw = b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" + b"--bX\r\n" * 200_000
    started = time.perf_counter()
    assert _reason(raw).reason == "mime_too_complex"
    assert time.perf_counter() - started < 1


def test_parts_of_a_forwarded_message_and_of_a_digest_count() -> None:
    inner = b"From: c@d.example\r\nContent-Type: multipart/mixed; boundary=\"in\"\r\n\r\n" + b"--in\r\n\r\nx\r\n" * 5 + b"--in--\r\n"
    forwarded = (b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=\"out\"\r\n\r\n--out\r\n\r\nsee below\r\n"
                 b"--out\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"--out--\r\n")
    figures = measure(forwarded)
    assert (figures.mime_parts, figures.mime_depth) == (8, 3)  # two parts, the message, its five parts
    digest = b"From: a@b.example\r\nContent-Type: multipart/digest; boundary=\"d\"\r\n\r\n" + b"--d\r\n\r\nFrom: e@f.example\r\n\r\nx\r\n" * 3
    assert measure(digest).mime_parts == 6  # each digest part is a message/rfc822 by default


def test_limits_come_from_the_settings() -> None:
    settings = Settings(max_mime_depth=7, max_encoded_words=12, max_raw_bytes=4096)
    limits = PrescanLimits.from_settings(settings)
    assert (limits.max_mime_depth, limits.max_encoded_words, limits.max_raw_bytes) == (7, 12, 4096)
    defaults = PrescanLimits.from_settings(Settings())
    assert all(getattr(defaults, f.name) == f.default for f in fields(PrescanLimits))
