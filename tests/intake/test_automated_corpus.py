"""Automated mail on real mail: sisimai's set of 629 bounces, auto-replies and complaints, and its controls.

The corpus (../shared/corpus/emails/sisimai-set-of-emails) is read in place, never copied. ``bsd/`` holds
bounces and other robot mail from many mail servers and services; ``not/`` holds mail sisimai must not take
for a bounce.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from classifiers.automated import Verdict, detect_automated
from config.settings import Settings
from intake.errors import RejectedInput
from intake.files import FileAdapter, discover
from intake.mime import parse_email
from storage.intake_store import EVENT, MESSAGE, QUARANTINE
from storage.queries import summary
from tests.conftest import CORPUS, service_missing
from tests.intake.imap_helpers import count, ingestor_for, wait_for

SISIMAI = CORPUS / "sisimai-set-of-emails"
ROBOTS = 629
NEEDED = 623  # 99 %
# Written by people: a Japanese message, and a message forwarding another as an attachment.
PEOPLE = ("is-not-bounce-01.eml", "is-not-bounce-02.eml")
# In sisimai's not/ only because it crashed a sisimai parser (rb-sisimai#368). It is a bounce
# (Return-Path: <>, Auto-Submitted: auto-replied, From: postmaster): answering it would start a loop.
ROBOT_CONTROL = "rb-issue-368-bug.eml"
# The kinds a file's family may get, by sisimai's name prefix (arf: abuse reports, and one unsubscribe request
# Apple Mail sends by itself; the rest: mail servers and services).
SENSIBLE = {"arf": {"complaint", "auto_reply"}, "lhost": {"bounce", "complaint", "auto_reply", "list", "receipt"},
            "rfc3464": {"bounce", "auto_reply"}, "rfc3834": {"auto_reply"}, "rhost": {"bounce"}}


@pytest.fixture(scope="module")
def sisimai() -> Path:
    if not SISIMAI.exists():
        service_missing(f"the shared e-mail corpus at {SISIMAI}")
    return SISIMAI


def _verdict(path: Path) -> Verdict | None:
    """What the worker decides for this file (the same inputs pipeline.decide passes); RejectedInput propagates."""
    message = parse_email(path.read_bytes(), received_at=datetime.now(timezone.utc), source=path.name, raw_ref=None).message
    return detect_automated(message.sender.address, message.subject, message.signals,
                            message_id=message.thread.message_id, report=message.report)


def test_robots_in_sisimais_set_are_recognised(sisimai: Path) -> None:
    files = sorted((sisimai / "bsd").glob("*.eml"))
    assert len(files) == ROBOTS
    misses: list[str] = []
    odd: list[str] = []
    kinds: Counter[str] = Counter()
    for path in files:
        try:
            verdict = _verdict(path)
        except RejectedInput as exc:
            misses.append(f"{path.name}: rejected as {exc.reason}")
            continue
        if verdict is None:
            misses.append(f"{path.name}: not recognised")
            continue
        assert verdict.reason, path.name  # staff see why
        kinds[verdict.kind] += 1
        if verdict.kind not in SENSIBLE[path.name.split("-")[0]]:
            odd.append(f"{path.name}: {verdict.kind} ({verdict.reason})")
    assert ROBOTS - len(misses) >= NEEDED, f"{len(misses)} missed:\n" + "\n".join(misses)
    assert not odd, "unexpected kinds:\n" + "\n".join(odd)
    assert kinds["bounce"] >= 550
    assert kinds["complaint"] >= 15
    assert kinds["auto_reply"] >= 5


@pytest.mark.parametrize("name", PEOPLE)
def test_mail_from_people_is_not_automated(sisimai: Path, name: str) -> None:
    assert _verdict(sisimai / "not" / name) is None


def test_the_crash_report_control_is_a_bounce(sisimai: Path) -> None:
    verdict = _verdict(sisimai / "not" / ROBOT_CONTROL)
    assert verdict is not None
    assert verdict.kind == "bounce"


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("lhost-dragonfly-01.eml", "bounce", "mailer-daemon@df.example.jp"),  # From: MAILER-DAEMON <>
        ("lhost-mcafee-04.eml", "bounce", "mailer-daemon@"),  # From: <>
        ("rfc3464-36.eml", "bounce", "report-type=delivery-status"),  # no From header at all
        ("lhost-amazonses-09.eml", "bounce", "Amazon SES bounce notification"),
        ("lhost-amazonses-11.eml", "complaint", "Amazon SES complaint notification"),
        ("lhost-amazonses-12.eml", "receipt", "Amazon SES delivery notification"),
        ("arf-22.eml", "complaint", "complaint about message from"),  # Microsoft JMRP
        ("lhost-fml-03.eml", "list", "X-Mlserver"),  # "Loop Alert" from a list manager
        ("lhost-kddi-01.eml", "bounce", "メールエラー通知"),
        ("lhost-verizon-02.eml", "bounce", "post_master@"),
    ],
)
def test_each_kind_of_evidence(sisimai: Path, name: str, kind: str, reason: str) -> None:
    verdict = _verdict(sisimai / "bsd" / name)
    assert verdict is not None
    assert verdict.kind == kind
    assert reason in verdict.reason


def test_a_null_sender_is_named_after_the_reporting_domain(sisimai: Path) -> None:
    raw = (sisimai / "bsd" / "lhost-sendmail-56.eml").read_bytes()  # From: Mail Delivery Subsystem <MAILER-DAEMON>
    message = parse_email(raw, received_at=datetime.now(timezone.utc), source="", raw_ref=None).message
    assert message.sender.address == "mailer-daemon@neko.nyaan.jp"
    assert message.sender.name == "Mail Delivery Subsystem"
    assert any(d.startswith("sender: no address") for d in message.defects)  # the stand-in is not hidden


def test_mail_with_no_sender_and_no_sign_of_a_robot_is_still_rejected() -> None:
    raw = b"To: helpdesk@osds.example\r\nSubject: Question\r\nMessage-ID: <q@x.org>\r\n\r\nHow do I publish?\r\n"
    with pytest.raises(RejectedInput) as caught:
        parse_email(raw, received_at=datetime.now(timezone.utc), source="", raw_ref=None)
    assert caught.value.reason == "no_sender"


def test_a_pasted_notification_is_not_a_notification() -> None:
    body = 'Hello, SES sent us this, what does it mean?\n{"notificationType":"Bounce","bounce":{}}\n'
    raw = b"From: Ana <ana@x.org>\r\nTo: helpdesk@osds.example\r\nSubject: SES\r\n\r\n" + body.encode()
    message = parse_email(raw, received_at=datetime.now(timezone.utc), source="", raw_ref=None).message
    assert message.report is None
    assert detect_automated(message.sender.address, message.subject, message.signals, report=message.report) is None


def test_hostile_json_bodies_are_only_text() -> None:
    nested = '{"a":' * 50_000 + "1" + "}" * 50_000  # json recursion
    for body in (nested, '{"notificationType": "Bounce", "bounce": {"bouncedRecipients": 5}, "mail": {"headers": 3}}'):
        raw = b"From: a@x.org\r\nSubject: x\r\n\r\n" + body.encode()
        message = parse_email(raw, received_at=datetime.now(timezone.utc), source="", raw_ref=None).message
        assert message.report in (None, {"kind": "ses-bounce", "action": "failed"})


# -- end to end: `helpdesk import` of the folders, the real worker, a real database ---------------------------------
def test_importing_the_set_records_robots_and_opens_tickets_only_for_people(
    sisimai: Path, settings: Settings, broker, engine: Engine, running_worker  # noqa: ANN001
) -> None:
    items = discover([sisimai / "bsd", sisimai / "not"])
    assert len(items) >= ROBOTS + 3
    with running_worker(engine):
        result = FileAdapter(ingestor_for(settings, broker)).ingest_all(items)
        wait_for(lambda: _accounted(engine) == len(items), timeout=90, interval=0.2)
    with engine.connect() as c:
        counts = summary(c)
        automated_pks = set(c.execute(select(MESSAGE.c.id).where(MESSAGE.c.kind == "automated")).scalars())
        duplicates = [json.loads(d) if isinstance(d, str) else d
                      for d in c.execute(select(EVENT.c.data).where(EVENT.c.kind == "duplicate")).scalars()]
        people = sorted(c.execute(select(MESSAGE.c.source).where(MESSAGE.c.kind != "automated")).scalars())
    # sisimai's set holds 30 byte-identical copies: each is recorded once, then as a duplicate of that robot
    recorded = counts["automated"] + sum(1 for d in duplicates if d["message"] in automated_pks)
    assert result.rejected == 0, counts["quarantined_by_reason"]
    assert counts["quarantined"] == 0, counts["quarantined_by_reason"]
    assert recorded >= NEEDED + 1, f"{recorded} recorded as automated; stored as people's mail: {people}"  # + the robot control
    assert {Path(p).name for p in people} >= set(PEOPLE)
    assert len([p for p in people if "/bsd/" in p]) <= ROBOTS - NEEDED, people
    assert counts["tickets"] <= len(PEOPLE) + (ROBOTS - NEEDED), people
    assert set(counts["automated_by_kind"]) <= {"bounce", "complaint", "auto_reply", "list", "receipt"}


def _accounted(engine: Engine) -> int:
    """Inputs the worker has finished with: stored messages, duplicate deliveries, quarantined items."""
    return count(engine, MESSAGE) + count(engine, EVENT, EVENT.c.kind == "duplicate") + count(engine, QUARANTINE)
