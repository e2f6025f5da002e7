"""Parsing in helper processes: poisoned mail is quarantined with its reason, the pool replaces the helper and goes on."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from intake.archive import MemoryArchive
from intake.base import MemorySink
from intake.email_intake import EmailIngestor
from intake.errors import RejectedInput, SinkError
from intake.message import InboundMessage
from intake.mime import Limits, parse_email
from intake import parse_pool
from intake.parse_pool import InProcessParser, ParsePool, ParseRequest, PoolOptions
from intake.prescan import PrescanLimits
from intake.supervision import ingest_many_isolated
from tests.factories import make_email
from tests.intake import hostile
from tests.intake.hostile import ALLOCATE, EXIT, HANG, HOSTILE, RAISE, SEGFAULT, Hostile, marked, misbehaving_parse
from tests.intake.imap_helpers import wait_for

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=timezone.utc)
IMAP_CORPUS = Path(__file__).resolve().parents[1] / "data" / "imap-corpus"
NO_PRESCAN = PrescanLimits(**{name: 2**62 for name in PrescanLimits.__dataclass_fields__})


@pytest.fixture(scope="module")
def pool() -> Iterator[ParsePool]:
    """One pool for the module, with a short timeout and a 512 MB cap, misbehaving on marked mail."""
    with ParsePool(options=PoolOptions(workers=2, timeout_seconds=3, memory_mb=512), parse=misbehaving_parse) as shared:
        yield shared


def _parse(parser, raw: bytes):  # noqa: ANN001, ANN202
    return parser.parse(raw, received_at=NOW, source="test", raw_ref=None)


def _reason(parser, raw: bytes) -> RejectedInput:  # noqa: ANN001
    with pytest.raises(RejectedInput) as caught:
        _parse(parser, raw)
    return caught.value


def _rss_peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def test_the_pool_parses_exactly_as_in_process(pool: ParsePool) -> None:
    for path in sorted(IMAP_CORPUS.glob("*.eml")):
        raw = path.read_bytes()
        isolated, local = _outcome(lambda: _parse(pool, raw)), _outcome(lambda: parse_email(raw, received_at=NOW, source="test", raw_ref=None))
        assert isolated == local, path.name


def _outcome(parse):  # noqa: ANN001, ANN202
    try:
        parsed = parse()
    except RejectedInput as exc:
        return exc.reason, exc.detail
    return parsed.message, parsed.blobs


def test_attachment_blobs_come_back_whole() -> None:
    from email.message import EmailMessage  # noqa: PLC0415

    msg = EmailMessage()
    msg["From"], msg["Subject"] = "ana@hacienda.gob.mx", "our data"
    msg.set_content("See the attached file.")
    data = os.urandom(3 * 1024 * 1024)
    msg.add_attachment(data, maintype="application", subtype="octet-stream", filename="data.bin")
    with ParsePool(options=PoolOptions(workers=1)) as isolated:
        parsed = _parse(isolated, msg.as_bytes())
    (attachment,) = parsed.message.attachments
    assert parsed.blobs == {attachment.sha256: data}


@pytest.mark.parametrize(("marker", "reason"), [
    (HANG, "parse_timeout"), (ALLOCATE, "parse_memory"), (SEGFAULT, "parse_crashed"), (EXIT, "parse_crashed"), (RAISE, "parse_error"),
], ids=["hang", "allocate", "segfault", "exit", "raise"])
def test_a_poisoned_mail_is_quarantined_and_the_next_one_parses(pool: ParsePool, marker: bytes, reason: str) -> None:
    # Given a mail that makes the parser misbehave
    started = time.monotonic()
    rejected = _reason(pool, marked(marker))
    # Then it is rejected with its reason, within the timeout (and some start-up)
    assert rejected.reason == reason, rejected.detail
    assert time.monotonic() - started < 3 + 5
    if reason == "parse_error":
        assert rejected.detail.startswith("KeyError: 'a parser bug'")
        assert "misbehaving_parse" in rejected.detail
    # And the next ordinary mail parses on a helper that replaced the broken one
    assert _parse(pool, make_email()).message.subject == "Validation errors in our tender data"
    assert len(pool.helper_pids) <= 2


def _dead(pid: int) -> bool:
    """The process is gone, or a zombie its parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before its /proc entry was opened, or while it was read
        return True


def test_a_helper_killed_while_idle_is_replaced_without_blaming_the_next_mail(pool: ParsePool) -> None:
    # Given helpers that have parsed a mail and are idle
    _parse(pool, make_email())
    # When every helper is killed
    killed = pool.helper_pids
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: all(_dead(pid) for pid in killed), timeout=10)
    # Then the next mail parses, on a helper that replaced them
    assert _parse(pool, make_email(message_id="<innocent@x.org>")).message.external_id == "innocent@x.org"


def test_every_helper_killed_while_idle_blames_not_the_next_single_mail(pool: ParsePool) -> None:
    # Given both helpers started (batches large enough for two lanes) and idle
    for attempt in range(10):
        pool.parse_many(_requests([make_email(message_id=f"<both{attempt}-{i}@x.org>") for i in range(60)]))
        if len(pool.helper_pids) == 2:
            break
    killed = pool.helper_pids
    assert len(killed) == 2
    # When every helper is killed
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: all(_dead(pid) for pid in killed), timeout=10)
    # Then the next mail parses alone on a new helper (it used to be blamed, "killed by SIGKILL", after two tries)
    assert _parse(pool, make_email(message_id="<innocent2@x.org>")).message.external_id == "innocent2@x.org"


def test_every_hostile_mail_without_prescan_is_contained_by_the_pool(pool: ParsePool) -> None:
    # Given no prescan at all: the pool alone must contain what the stdlib does with hostile mail
    peak_before = _rss_peak_kb()
    outcomes = {}
    for mail in HOSTILE:
        if mail.name in {"many_parameters", "many_address_comments"}:
            continue  # merely slow (5-10 s of CPU in the stdlib): prescan's job, not worth the wait here
        started = time.monotonic()
        try:
            outcomes[mail.name] = _parse(pool, mail.build()).message.channel
        except RejectedInput as exc:
            outcomes[mail.name] = exc.reason
        assert time.monotonic() - started < 3 + 5, mail.name
    assert outcomes["deep_multipart"] == outcomes["nested_comments_from"] == "parse_error"  # RecursionError
    assert outcomes["encoded_words_subject"] in {"parse_memory", "parse_timeout"}
    assert outcomes["broken_base64"] == outcomes["nul_bytes"] == "email"
    # And the test process itself never held what the helpers did
    assert _rss_peak_kb() - peak_before < 150 * 1024


@pytest.mark.parametrize("mail", HOSTILE, ids=lambda h: h.name)
def test_each_hostile_mail_ends_as_a_message_or_quarantined_with_its_reason(mail: Hostile) -> None:
    # Given the ingestor as the adapters build it (prescan, then the pool)
    sink, archive = MemorySink(), MemoryArchive()
    with EmailIngestor(sink, archive, Limits(), pool=PoolOptions(workers=1, timeout_seconds=10)) as ingestor:
        started = time.monotonic()
        queued = ingestor.ingest(mail.build(), f"test:{mail.name}")
        elapsed = time.monotonic() - started
    assert elapsed < 10
    if queued:
        assert "message" in mail.reasons
        assert InboundMessage.from_json(sink.messages[0].to_json()) == sink.messages[0]
    else:
        (rejected,) = sink.rejected
        allowed = mail.reasons | ({"parse_error"} if "message" in mail.reasons else set())  # see the report on mime.py bugs
        assert rejected.reason in allowed, rejected.detail
        assert rejected.raw_ref in archive
        assert rejected.detail


def test_the_ingestor_quarantines_even_an_exception_outside_the_parser() -> None:
    class BrokenParser(InProcessParser):
        def parse(self, raw: bytes, **kwargs):  # noqa: ANN003, ANN201
            raise ZeroDivisionError("not from the parser's translation")

    sink = MemorySink()
    ingestor = EmailIngestor(sink, MemoryArchive(), Limits(), parser=BrokenParser())
    assert ingestor.ingest(make_email(), "test") is False
    assert sink.rejected[0].reason == "parse_error"
    assert sink.rejected[0].detail.startswith("ZeroDivisionError")


def test_in_process_parsing_translates_failures_the_same_way() -> None:
    local = InProcessParser(parse=misbehaving_parse)
    assert _reason(local, marked(RAISE)).reason == "parse_error"
    assert _reason(local, hostile.deep_multipart(1000)).detail.startswith("RecursionError")
    assert _parse(local, make_email()).message.subject


def test_concurrent_callers_share_at_most_the_configured_helpers() -> None:
    # Given a pool of two helpers
    with ParsePool(options=PoolOptions(workers=2)) as shared:
        seen: set[int] = set()
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(15):
                    assert _parse(shared, make_email(message_id=f"<t{n}-{i}@x.org>")).message.external_id == f"t{n}-{i}@x.org"
                    seen.update(shared.helper_pids)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        # When four callers parse at once, then every parse succeeds on at most the two helpers
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert 1 <= len(seen) <= 2
        pids = shared.helper_pids
    # And closing the pool ends its helpers
    assert shared.helper_pids == []
    wait_for(lambda: all(_dead(pid) for pid in pids), timeout=5)


def test_helpers_are_recycled_after_their_quota() -> None:
    with ParsePool(options=PoolOptions(workers=1, max_tasks_per_helper=3)) as recycled:
        pids = set()
        for i in range(7):
            _parse(recycled, make_email(message_id=f"<r{i}@x.org>"))
            pids.update(recycled.helper_pids)
    assert len(pids) == 3


def test_a_helper_that_cannot_start_is_the_parsers_failure_not_the_mails() -> None:
    with ParsePool(options=PoolOptions(workers=1, start_timeout_seconds=20), parse=hostile.broken_parse) as starved:
        with pytest.raises(SinkError):
            _parse(starved, make_email())
    with pytest.raises(SinkError):
        _parse(starved, make_email())  # closed


def test_the_parse_function_must_be_importable_by_name() -> None:
    with pytest.raises(ValueError, match="importable"):
        ParsePool(parse=lambda raw, **kw: parse_email(raw, **kw))
    with pytest.raises(ValueError):
        ParsePool(options=PoolOptions(workers=0))


def test_options_come_from_the_settings() -> None:
    from config.settings import Settings  # noqa: PLC0415

    options = PoolOptions.from_settings(Settings(parse_workers=3, parse_timeout_seconds=7.5, parse_memory_mb=300))
    assert (options.workers, options.timeout_seconds, options.memory_mb) == (3, 7.5, 300)
    assert isinstance(EmailIngestor(MemorySink(), MemoryArchive(), Limits(), pool=PoolOptions(workers=0)).parser, InProcessParser)


# -- parse_many: a batch parsed in windows, in parallel across the helpers --------------------------------------

def _requests(raws: list[bytes]) -> list[ParseRequest]:
    return [ParseRequest(raw, NOW, f"test:{i}", None) for i, raw in enumerate(raws)]


@pytest.mark.parametrize(("marker", "reason"), [
    (HANG, "parse_timeout"), (ALLOCATE, "parse_memory"), (SEGFAULT, "parse_crashed"), (EXIT, "parse_crashed"), (RAISE, "parse_error"),
], ids=["hang", "allocate", "segfault", "exit", "raise"])
def test_a_poisoned_mail_in_a_batch_is_blamed_alone(pool: ParsePool, marker: bytes, reason: str) -> None:
    # Given a batch of 40 ordinary mails with a poisoned one in the middle of a helper's window
    raws = [make_email(message_id=f"<m{i}@x.org>") for i in range(40)]
    raws[21] = marked(marker)
    # When the batch is parsed
    outcomes = pool.parse_many(_requests(raws))
    # Then only that mail is rejected, with its reason; every other one parses, in order
    assert getattr(outcomes[21], "reason", None) == reason, outcomes[21]
    assert [o.message.external_id for i, o in enumerate(outcomes) if i != 21] == [f"m{i}@x.org" for i in range(40) if i != 21]
    assert len(pool.helper_pids) <= 2


def test_a_batch_parses_exactly_as_one_at_a_time(pool: ParsePool) -> None:
    raws = [path.read_bytes() for path in sorted(IMAP_CORPUS.glob("*.eml"))]
    batched = [_outcome(lambda o=o: _raise_or_return(o)) for o in pool.parse_many(_requests(raws))]
    single = [_outcome(lambda r=r: parse_email(r, received_at=NOW, source=f"test:{i}", raw_ref=None)) for i, r in enumerate(raws)]
    assert batched == single


def _raise_or_return(outcome):  # noqa: ANN001, ANN202
    if isinstance(outcome, RejectedInput):
        raise outcome
    return outcome


def test_helpers_killed_while_idle_blame_no_mail_of_the_next_batch(pool: ParsePool) -> None:
    # Given idle helpers, all killed
    pool.parse_many(_requests([make_email(message_id=f"<warm{i}@x.org>") for i in range(4)]))
    killed = pool.helper_pids
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: all(_dead(pid) for pid in killed), timeout=10)
    # When the next batch is parsed, then every mail of it parses
    outcomes = pool.parse_many(_requests([make_email(message_id=f"<n{i}@x.org>") for i in range(30)]))
    assert [getattr(o, "reason", None) or o.message.external_id for o in outcomes] == [f"n{i}@x.org" for i in range(30)]


def test_a_large_mail_goes_to_a_helper_alone_and_parses() -> None:
    big = make_email(body="x" * (ParsePool.WINDOW_BYTES * 2))
    with ParsePool(options=PoolOptions(workers=2)) as isolated:
        outcomes = isolated.parse_many(_requests([make_email(message_id="<a@x.org>"), big, make_email(message_id="<b@x.org>")]))
    assert [type(o).__name__ for o in outcomes] == ["ParsedEmail"] * 3


def test_the_ingestor_queues_a_batch_in_order_and_quarantines_its_bad_mail_alone() -> None:
    sink = MemorySink()
    ingestor = EmailIngestor(sink, MemoryArchive(), Limits(), parser=InProcessParser())
    items = [(make_email(message_id="<one@x.org>"), "s1"), (b"not an e-mail at all", "s2"), (make_email(message_id="<two@x.org>"), "s3")]
    assert ingestor.ingest_many(items) == [True, False, True]
    assert [m.external_id for m in sink.messages] == ["one@x.org", "two@x.org"]
    assert [(r.source, r.reason) for r in sink.rejected] == [("s2", "not_an_email")]
    assert sink.rejected[0].raw_ref in ingestor.archive


def test_a_batch_that_fails_unexpectedly_is_ingested_one_by_one() -> None:
    class Exploding(EmailIngestor):
        def ingest_many(self, items):  # noqa: ANN001, ANN202
            if any(b"BOMB" in raw for raw, _ in items):
                raise RecursionError("not from the parser's translation")
            return super().ingest_many(items)

    sink = MemorySink()
    ingestor = Exploding(sink, MemoryArchive(), Limits(), parser=InProcessParser())
    items = [(make_email(message_id="<one@x.org>"), "s1"), (make_email(subject="BOMB"), "s2"), (make_email(message_id="<two@x.org>"), "s3")]
    assert ingest_many_isolated(ingestor, items) == [True, False, True]
    assert [m.external_id for m in sink.messages] == ["one@x.org", "two@x.org"]
    assert [(r.source, r.reason) for r in sink.rejected] == [("s2", "adapter_error")]


def test_prestarted_helpers_are_the_ones_that_parse() -> None:
    with ParsePool(options=PoolOptions(workers=2)) as isolated:
        isolated.prestart()
        wait_for(lambda: len(isolated.helper_pids) == 2, timeout=30)
        started = isolated.helper_pids
        isolated.parse_many(_requests([make_email(message_id=f"<p{i}@x.org>") for i in range(10)]))
        assert isolated.helper_pids == started


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_helpers_are_forked_by_one_zygote_that_loaded_the_parser_once() -> None:
    # Given a pool of two helpers on Linux, where a zygote forks them
    assert parse_pool._FORKING, "this Linux should offer pidfds and descriptor passing"
    with ParsePool(options=PoolOptions(workers=2)) as forked:
        forked.prestart()
        wait_for(lambda: len(forked.helper_pids) == 2, timeout=30)
        # Then both helpers are children of one process, itself the pool's child
        helpers = forked.helper_pids
        zygote = {_parent(pid) for pid in helpers}
        assert len(zygote) == 1
        (zygote_pid,) = zygote
        assert (_parent(zygote_pid), zygote_pid in helpers) == (os.getpid(), False)
        # And they parse as helpers started afresh do
        results = forked.parse_many(_requests([make_email(message_id=f"<z{i}@x.org>") for i in range(8)]))
        assert [r.message.external_id for r in results] == [f"z{i}@x.org" for i in range(8)]
    # And closing the pool ends the zygote and every helper
    wait_for(lambda: all(_dead(pid) for pid in (*helpers, zygote_pid)), timeout=10)


def test_a_killed_zygote_leaves_its_helpers_parsing_and_is_replaced_for_the_next_helper() -> None:
    with ParsePool(options=PoolOptions(workers=1, timeout_seconds=5), parse=misbehaving_parse) as forked:
        _parse(forked, make_email())
        (helper,) = forked.helper_pids
        zygote = _parent(helper)
        # When the zygote is killed, the helper it forked parses on
        os.kill(zygote, signal.SIGKILL)
        wait_for(lambda: _dead(zygote), timeout=10)
        assert _parse(forked, make_email(message_id="<after@x.org>")).message.external_id == "after@x.org"
        assert forked.helper_pids == [helper]
        # And a mail that crashes the orphaned helper is still quarantined as a crash (how it ended was lost with the zygote)
        assert _reason(forked, marked(SEGFAULT)).reason == "parse_crashed"
        # And the next mail parses on a helper forked by a new zygote
        assert _parse(forked, make_email(message_id="<next@x.org>")).message.external_id == "next@x.org"
        (replacement,) = forked.helper_pids
        assert (replacement != helper, _parent(replacement) not in (zygote, os.getpid())) == (True, True)


def test_a_helper_killed_from_outside_is_reported_by_the_signal_that_ended_it(pool: ParsePool) -> None:
    # Given a helper parsing a mail that hangs
    outcome: list[RejectedInput] = []
    thread = threading.Thread(target=lambda: outcome.append(_reason(pool, marked(HANG))))
    thread.start()
    wait_for(lambda: bool(pool.helper_pids), timeout=10)
    time.sleep(0.5)
    # When something outside kills it (the out-of-memory killer does so with SIGKILL)
    busy = [pid for pid in pool.helper_pids if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "R"]
    for pid in busy:
        os.kill(pid, signal.SIGKILL)
    thread.join(timeout=30)
    # Then the mail is quarantined naming the signal, which the zygote reported
    assert (len(busy), outcome[0].reason, "SIGKILL" in outcome[0].detail) == (1, "parse_crashed", True)
