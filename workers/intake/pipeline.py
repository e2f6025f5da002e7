"""The intake pipeline: dedupe → thread → classify → route → store, one transaction per message
(or per batch of messages read together, each in a savepoint of its own: ``Pipeline.process_batch``).

Each stage is a pure decision (``detect_automated``, ``Threader.link``,
``EnquiryClassifier.classify``, ``Router.route``) over the frozen message;
only ``Pipeline.process`` touches the database: it reads what threading needs and hands
storage the decision whole (``storage.intake_records``: a new ticket, a reply, an automated
mail, a duplicate), and all of its writes for one message commit together or not at all. Running it twice for the same message
stores nothing new: the message row's unique key is claimed first, and a
second delivery finds it taken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from hashlib import sha256
from typing import Any, Literal

from classifiers.automated import Verdict, detect_automated
from classifiers.docs.suggestions import Signposting
from classifiers.pipeline import EnquiryClassifier
from classifiers.result import Classification
from intake.message import InboundMessage
from intake.queue import InflightRegistry, message_ids
from storage.errors import LostRace
from storage.intake_records import Arrival, Automated, Duplicate, Labels, NewTicket, Reply, Route, Threading
from storage.intake_store import AlreadyStored, IntakeStore, IntakeTx
from storage.models import utcnow
from workers.intake.conversation import Threader, ThreadLink
from workers.errors import BatchUndone, ParentInFlight
from workers.intake.routing import RouteDecision, RouteFacts, Router

OutcomeKind = Literal["created", "threaded", "automated", "duplicate", "redelivered"]


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    ticket_id: int | None
    message_pk: int
    detail: str = ""
    effects: tuple[str, ...] = ()  # outbox keys recorded with the message, to enqueue once committed


@dataclass(frozen=True)
class Left:
    """A message of a batch that was not stored with it (its savepoint undone), to be processed again alone."""

    index: int
    reason: str
    parent_in_flight: bool = False


@dataclass(frozen=True)
class BatchOutcome:
    outcomes: dict[int, Outcome] = field(default_factory=dict)  # by position in the batch
    left: tuple[Left, ...] = ()

    @property
    def effects(self) -> tuple[str, ...]:
        return tuple(key for outcome in self.outcomes.values() for key in outcome.effects)


@dataclass(frozen=True)
class Decisions:
    """Everything decided about a message without the database: made before the write
    transaction, so the transaction (one writer at a time on SQLite) holds only database work."""

    verdict: Verdict | None
    labels: Classification | None  # None for automated mail
    route: RouteDecision | None
    docs: Signposting | None = None  # documentation suggestions for a new ticket; None without an index


class Pipeline:
    def __init__(
        self,
        store: IntakeStore,
        classifier: EnquiryClassifier,
        router: Router,
        threader: Threader,
        inflight: InflightRegistry | None = None,
        *,
        own_addresses: frozenset[str] = frozenset(),
        own_message_id_domain: str | None = None,
        after_store: Callable[[InboundMessage, Outcome], None] | None = None,
        on_enquirer_reply: Callable[[IntakeTx, int, datetime], dict[str, Any]] | None = None,
        signpost: Callable[[str, str], Signposting | None] | None = None,
    ) -> None:
        self.store = store
        self.classifier = classifier
        self.router = router
        self.threader = threader
        self.inflight = inflight
        self.own_addresses = own_addresses
        self.own_message_id_domain = own_message_id_domain
        self.after_store = after_store
        self.on_enquirer_reply = on_enquirer_reply
        self.signpost = signpost

    def process(self, message: InboundMessage, delivery_id: str, *, wait_for_parent: bool = True) -> Outcome:
        """Store ``message`` exactly once. Raises ParentInFlight when it should wait for its parent."""
        outcome = self._store(message, delivery_id, self.decide(message), wait_for_parent)
        if self.inflight is not None:
            # Stored (or found stored): its in-flight mark has done its job, whatever the outcome.
            self.inflight.clear(message.channel, message_ids(message))
        if self.after_store is not None:
            self.after_store(message, outcome)
        return outcome

    def process_batch(
        self, items: Sequence[tuple[InboundMessage, str]], *, fatal: Callable[[BaseException], bool] = lambda exc: False
    ) -> BatchOutcome:
        """Store messages read together, each ``(message, delivery_id)`` as it would be stored alone: with one
        writer at a time (SQLite) in one transaction, with writers in parallel (PostgreSQL) a transaction each.

        A message that cannot be stored here — its parent is still queued, the database refuses its data, a
        bug — is undone alone and handed back in ``left``, to be processed again on its own (where it waits,
        retries or is dead-lettered as a single message would be). An error ``fatal`` recognises (an outage)
        fails the whole batch, to be delivered again: what was committed is recognised by its delivery id.
        """
        left: list[Left] = []
        decided: list[tuple[int, InboundMessage, str, Decisions | None]] = []
        repeats = self._stored_before(items, fatal)
        for index, (message, delivery_id) in enumerate(items):
            if (message.channel, message.external_id, message.content_hash) in repeats:
                # stored before with this very content: a duplicate, for which nothing is decided (should the
                # transaction not find it after all, it decides there)
                decided.append((index, message, delivery_id, None))
                continue
            decisions = _each(index, lambda: self.decide(message), fatal, left)
            if decisions is not None:
                decided.append((index, message, delivery_id, decisions))
        outcomes: dict[int, Outcome] = {}
        if decided and self.store.one_writer:
            waiting: list[Left] = []
            try:  # first without savepoints (each costs two statements); on any failure, again with them
                outcomes = self._store_batch(decided, fatal, waiting, savepoints=False)
            except BatchUndone:
                waiting = []
                outcomes = self._store_batch(decided, fatal, waiting, savepoints=True)
            left.extend(waiting)
        for index, message, delivery_id, decisions in decided if not self.store.one_writer else ():
            # Writers in parallel (PostgreSQL): a transaction per message. One per batch would hold the locks of
            # fifty messages' contacts and keys while other workers' batches wait for them, or deadlock on them.
            outcome = _each(index, lambda: self._store(message, delivery_id, decisions, True), fatal, left)
            if outcome is not None:
                outcomes[index] = outcome
        stored = [items[index][0] for index in outcomes]
        if self.inflight is not None and stored:
            self.inflight.clear_many((message.channel, message_ids(message)) for message in stored)
        if self.after_store is not None:
            for index, outcome in outcomes.items():
                self.after_store(items[index][0], outcome)
        return BatchOutcome(outcomes, tuple(sorted(left, key=lambda item: item.index)))

    def _stored_before(self, items: Sequence[tuple[InboundMessage, str]], fatal: Callable[[BaseException], bool]) -> set[tuple[str, str, str]]:
        """(channel, external id, content hash) of the batch's messages stored before: exact repeats (an adapter reading a
        mailbox again, a copy in two folders), read in one query outside the write transaction. Empty on a failure other
        than an outage: every message is then decided, as before this shortcut."""
        try:
            return self.store.stored_content([(message.channel, message.external_id) for message, _ in items])
        except Exception as exc:  # noqa: BLE001 - a shortcut only
            if fatal(exc):
                raise
            return set()

    def _store(self, message: InboundMessage, delivery_id: str, decisions: Decisions | None, wait_for_parent: bool) -> Outcome:
        """One message in a transaction of its own."""
        for _attempt in range(3):
            try:
                with self.store.transaction() as tx:
                    return self._process(tx, message, delivery_id, decisions, utcnow(), wait_for_parent)
            except LostRace:
                continue  # a concurrent delivery stored it first; the next attempt sees its row
        raise RuntimeError(f"{message.channel}:{message.external_id}: lost the race three times")

    def _store_batch(self, decided: list[tuple[int, InboundMessage, str, Decisions | None]], fatal: Callable[[BaseException], bool],
                     left: list[Left], *, savepoints: bool) -> dict[int, Outcome]:
        """One transaction for the batch (one writer: no concurrent delivery can win a race inside it). Without
        ``savepoints`` a failure other than a waiting reply (raised before anything is written) undoes the whole
        transaction with ``BatchUndone``; with them, each message's failure undoes that message alone."""
        outcomes: dict[int, Outcome] = {}
        with self.store.transaction() as tx:
            now = utcnow()
            for index, message, delivery_id, decisions in decided:

                def store_one(message: InboundMessage = message, delivery_id: str = delivery_id,
                              decisions: Decisions | None = decisions) -> Outcome:
                    if not savepoints:
                        return self._process(tx, message, delivery_id, decisions, now, True)
                    with tx.savepoint():
                        return self._process(tx, message, delivery_id, decisions, now, True)

                outcome = _each(index, store_one, fatal, left, undo=not savepoints)
                if outcome is not None:
                    outcomes[index] = outcome
            if not savepoints:  # the batch's events and outbox rows: a row refused undoes the batch, to be stored again with savepoints
                _each(-1, tx.flush, fatal, [], undo=True)
        return outcomes

    def decide(self, message: InboundMessage) -> Decisions:
        """Automated or not; type, sector and language; the route a new ticket would take. Pure."""
        verdict = None
        if message.channel == "email":
            verdict = detect_automated(
                message.sender.address,
                message.subject,
                message.signals,
                message_id=message.thread.message_id,
                report=message.report,  # what intake read from the body: a plain-text bounce, an SES notification
                own_addresses=self.own_addresses,
                own_message_id_domain=self.own_message_id_domain,
            )
        if verdict is not None:
            return Decisions(verdict, None, None)
        # The new text decides what is asked; the whole text (signature included) who is asking.
        who = message.identities.get("email") or message.sender.address  # a Slack user's e-mail tells their organisation
        labels = self.classifier.classify(subject=message.subject, text=message.fresh_text, sender=who, sector_text=message.text)
        docs = None
        if self.signpost is not None:  # used only if the message opens a ticket (the threader decides, in the transaction)
            docs = self.signpost(f"{message.subject}\n{message.fresh_text}", labels.language.value)
        return Decisions(None, labels, self.router.route(_route_facts(message, labels)), docs)

    def _process(
        self, tx: IntakeTx, message: InboundMessage, delivery_id: str, decisions: Decisions | None, now: datetime, wait: bool
    ) -> Outcome:
        """``decisions`` None: not made, as the message was found stored before (made here if it is not a duplicate after all)."""
        stored = tx.find_message(message.channel, message.external_id)
        if stored is not None:
            if stored.content_hash != message.content_hash:
                # The same id for different content (a sender reusing Message-IDs): keep both.
                variant = message.model_copy(update={"external_id": f"{message.external_id}#{message.content_hash[:16]}"})
                return self._process(tx, variant, delivery_id, decisions, now, wait)
            return self._duplicate(tx, message, stored, delivery_id, now)
        if decisions is None:
            decisions = self.decide(message)
        link = self.threader.link(message, tx, automated=decisions.verdict is not None)
        if link.ticket_id is None and wait and self.inflight is not None and (refs := message.thread.referenced_ids()):
            if self.inflight.any_inflight(message.channel, refs):
                raise ParentInFlight(f"{message.channel}:{message.external_id} replies to a message still in the queue")
            # A parent's worker clears its mark only once it has committed: one that committed after the look above
            # and cleared before this check (another worker, on PostgreSQL) is there now for a new statement to read.
            link = self.threader.link(message, tx, automated=decisions.verdict is not None)
        if decisions.verdict is not None:
            return self._automated(tx, message, delivery_id, link, decisions.verdict, now)
        assert decisions.labels is not None and decisions.route is not None
        if link.ticket_id is not None:
            return self._threaded(tx, message, delivery_id, link, decisions.labels, now)
        return self._new_ticket(tx, message, delivery_id, link, decisions.labels, decisions.route, now, decisions.docs)

    def _duplicate(self, tx: IntakeTx, message: InboundMessage, claim: AlreadyStored, delivery_id: str, now: datetime) -> Outcome:
        if claim.delivery_id == delivery_id:
            return Outcome("redelivered", claim.ticket_id, claim.message_pk, "this delivery was stored before")
        if message.source and claim.source == message.source:
            # The same item of the same source read again (an adapter's restart overlap): not a new copy.
            return Outcome("redelivered", claim.ticket_id, claim.message_pk, f"{message.source} was read before")
        # One duplicate per copy, not per read: a copy (another mailbox item) read again after a restart
        # or in the overlap window has the same key and is not counted twice.
        copy = sha256(f"{message.channel}\0{message.external_id}\0{message.source}".encode("utf-8", "surrogatepass")).hexdigest()
        key = f"duplicate:{copy[:48]}" if message.source else f"duplicate:{delivery_id}"
        if not tx.record_duplicate(Duplicate(key, message.channel, claim.ticket_id, claim.message_pk), now):
            return Outcome("redelivered", claim.ticket_id, claim.message_pk, f"{message.source} was read before")
        return Outcome("duplicate", claim.ticket_id, claim.message_pk, f"already stored as message {claim.message_pk}")

    def _automated(
        self, tx: IntakeTx, message: InboundMessage, delivery_id: str, link: ThreadLink, verdict: Verdict, now: datetime
    ) -> Outcome:
        # Robots do not become contacts: a bounce's sender is a mail server, not an enquirer.
        mail = Automated(arrival(message, delivery_id), _threading(link), verdict.kind, verdict.reason)
        return Outcome("automated", link.ticket_id, tx.record_automated(mail, now), verdict.reason)

    def _threaded(
        self, tx: IntakeTx, message: InboundMessage, delivery_id: str, link: ThreadLink, labels: Classification, now: datetime
    ) -> Outcome:
        assert link.ticket_id is not None
        message_pk = tx.record_reply(Reply(arrival(message, delivery_id), _threading(link), labels.language.value), now)
        changes: dict[str, Any] = {"updated_at": now}
        status = tx.ticket_status(link.ticket_id)
        if status == "resolved":
            tx.reopen_for_reply(link.ticket_id, message_pk, message.channel, now)
        elif status == "pending" and self.on_enquirer_reply is not None:
            changes.update(self.on_enquirer_reply(tx, link.ticket_id, now))  # the enquirer answered: the SLA clock runs again
        tx.update_ticket(link.ticket_id, changes)
        return Outcome("threaded", link.ticket_id, message_pk, link.reason)

    def _new_ticket(
        self,
        tx: IntakeTx,
        message: InboundMessage,
        delivery_id: str,
        link: ThreadLink,
        labels: Classification,
        route: RouteDecision,
        now: datetime,
        docs: Signposting | None = None,
    ) -> Outcome:
        enquiry = NewTicket(
            arrival(message, delivery_id),
            _threading(link),
            _labels(labels),
            Route(route.team, route.priority, route.rule, route.to_dict()),
            _opened_at(message),
            suggestions=docs.to_json() if docs is not None else None,
            docs_gap=docs.gap if docs is not None else None,
        )
        opened = tx.open_ticket(enquiry, now)
        return Outcome("created", opened.ticket_id, opened.message_pk, f"{route.team} via {route.rule}", (opened.assign_key,))


def arrival(message: InboundMessage, delivery_id: str) -> Arrival:
    """The message as storage records it."""
    return Arrival(
        channel=message.channel,
        external_id=message.external_id,
        delivery_id=delivery_id,
        sender_address=message.sender.address,
        sender_name=message.sender.name,
        subject=message.subject,
        text=message.text,
        new_text=message.new_text,
        content_hash=message.content_hash,
        received_at=message.received_at,
        sent_at=message.sent_at,
        report=message.report,
        signals=dict(message.signals) or None,
        html=message.html,
        message_id=message.thread.message_id,
        thread_key=message.thread.thread_key,
        refs=list(message.thread.referenced_ids()) or None,
        raw_ref=message.raw_ref,
        attachments=[a.model_dump() for a in message.attachments] or None,
        recipients=[r.model_dump() for r in message.recipients] or None,
        defects=list(message.defects) or None,
        truncated=message.truncated,
        source=message.source,
        identities=dict(message.identities),
    )


def _threading(link: ThreadLink) -> Threading:
    return Threading(link.ticket_id, link.rule, link.reason)


def _labels(labels: Classification) -> Labels:
    return Labels(
        type=labels.type.value,
        type_confidence=labels.type.confidence,
        sector=labels.sector.value,
        sector_confidence=labels.sector.confidence,
        language=labels.language.value,
        language_confidence=labels.language.confidence,
        needs_triage=labels.needs_triage,
        explained=labels.to_dict(),
        organisation=labels.organisation,
        organisation_name=labels.organisation_name,
    )


def _route_facts(message: InboundMessage, labels: Classification) -> RouteFacts:
    return RouteFacts(
        type=labels.type.value,
        sector=labels.sector.value,
        language=labels.language.value,
        channel=message.channel,
        domain=_sender_domain(message),
        text=f"{message.subject}\n{message.fresh_text}",
        needs_triage=labels.needs_triage,
        organisation=labels.organisation,
        confidence=labels.type.confidence,
    )


def _sender_domain(message: InboundMessage) -> str | None:
    """The e-mail domain of the sender — for a Slack user, of their profile e-mail."""
    address = message.identities.get("email") or message.sender.address
    return address.rsplit("@", 1)[1].lower() if "@" in address else None


def _opened_at(message: InboundMessage) -> datetime:
    """When the enquiry was made: the sender's date when plausible (imports of old mail), else receipt."""
    sent = message.sent_at
    received = message.received_at
    if sent is not None and received - timedelta(days=3650) < sent <= received + timedelta(hours=1):
        return min(sent, received).astimezone(timezone.utc)
    return received.astimezone(timezone.utc)


def _each(index: int, step: Callable[[], Any], fatal: Callable[[BaseException], bool], left: list[Left], *,
          undo: bool = False) -> Any:
    """``step()`` for the batch's message at ``index``; None when it failed, with the message recorded in ``left``.

    A fatal error (an outage) is raised for the whole batch; with ``undo`` (a batch transaction without savepoints)
    so is any failure but a waiting reply, as ``BatchUndone``."""
    try:
        return step()
    except ParentInFlight as exc:
        left.append(Left(index, str(exc), parent_in_flight=True))
    except Exception as exc:  # noqa: BLE001 - one message's failure must not stop the batch
        if fatal(exc):
            raise
        if undo:
            raise BatchUndone from exc
        left.append(Left(index, _describe(exc)))
    return None


def _describe(exc: BaseException) -> str:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {detail}"[:500]
