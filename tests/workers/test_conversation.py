from __future__ import annotations

from dataclasses import dataclass, field

from tests.factories import make_message
from workers.intake.conversation import Threader, TicketKeys


@dataclass
class FakeLookup:
    """An in-memory ThreadLookup: the pure threading rules are tested apart from SQL (the SQL twin is tested on both databases)."""

    by_message_id: dict[str, int] = field(default_factory=dict)
    by_thread_key: dict[str, int] = field(default_factory=dict)
    participants: dict[int, set[str]] = field(default_factory=dict)

    def tickets_by_message_ids(self, channel: str, ids: list[str]) -> dict[str, int]:
        return {i: self.by_message_id[i] for i in ids if i in self.by_message_id}

    def ticket_by_thread_key(self, channel: str, thread_key: str) -> int | None:
        return self.by_thread_key.get(thread_key)

    def ticket_exists(self, ticket_id: int) -> bool:
        return ticket_id in self.participants

    def ticket_participants(self, ticket_id: int) -> set[str]:
        return self.participants.get(ticket_id, set())


threader = Threader("HD", frozenset({"gmail.com"}))


ANA = {"ana@hacienda.gob.mx"}


def test_in_reply_to_wins_and_is_named() -> None:
    lookup = FakeLookup(by_message_id={"parent@x": 7, "root@x": 3}, participants={7: ANA, 3: ANA})
    link = threader.link(make_message("r@x", in_reply_to=("parent@x",), references=("root@x", "parent@x")), lookup)
    assert (link.ticket_id, link.rule) == (7, "references")
    assert "In-Reply-To names <parent@x>" in link.reason


def test_references_chain_finds_the_thread_when_the_direct_parent_is_unknown() -> None:
    # A reply to the helpdesk's own reply (not stored as inbound): References still names the original.
    lookup = FakeLookup(by_message_id={"root@x": 3}, participants={3: ANA})
    link = threader.link(make_message("r@x", in_reply_to=("ours@osds",), references=("root@x", "ours@osds")), lookup)
    assert link.ticket_id == 3
    assert "References names <root@x>" in link.reason


def test_thread_key() -> None:
    link = threader.link(make_message("s1", channel="slack", sender="U1", thread_key="C1:1700.1"), FakeLookup(by_thread_key={"C1:1700.1": 9}))
    assert (link.ticket_id, link.rule) == (9, "thread_key")


def test_subject_token_for_a_participant() -> None:
    lookup = FakeLookup(participants={12: {"ana@hacienda.gob.mx"}})
    link = threader.link(make_message("x", subject="Re: [HD-12] datos"), lookup)
    assert (link.ticket_id, link.rule) == (12, "subject_token")


def test_subject_token_for_a_colleague_of_the_same_organisation() -> None:
    lookup = FakeLookup(participants={12: {"ana@hacienda.gob.mx"}})
    link = threader.link(make_message("x", sender="luis@hacienda.gob.mx", subject="[HD-12] más datos"), lookup)
    assert link.ticket_id == 12
    assert "organisation" in link.reason


def test_subject_token_from_a_stranger_is_ignored_and_explained() -> None:
    lookup = FakeLookup(participants={12: {"ana@gmail.com"}})
    link = threader.link(make_message("x", sender="mallory@gmail.com", subject="[HD-12] let me in"), lookup)
    assert link.ticket_id is None
    assert "never took part" in link.reason


def test_no_link_starts_a_new_conversation() -> None:
    link = threader.link(make_message("x", subject="[HD-99] unknown ticket"), FakeLookup())
    assert link.ticket_id is None
    assert link.rule == "new"


def test_a_stranger_quoting_a_thread_gets_a_ticket_of_their_own() -> None:
    lookup = FakeLookup(by_message_id={"root@x": 3}, participants={3: ANA})
    link = threader.link(make_message("r@x", sender="someone@elsewhere.org", references=("root@x",)), lookup)
    assert link.ticket_id is None
    assert "References names <root@x> on HD-3, but someone@elsewhere.org never took part" in link.reason


def test_automated_mail_attaches_to_what_it_names_whoever_sent_it() -> None:
    lookup = FakeLookup(by_message_id={"ours@helpdesk": 3}, participants={3: ANA})
    link = threader.link(make_message("b@x", sender="mailer-daemon@mx.org", references=("ours@helpdesk",)), lookup, automated=True)
    assert link.ticket_id == 3


def test_reply_address_plus_addressing() -> None:
    lookup = FakeLookup(participants={17: ANA})
    link = threader.link(make_message("x", recipients=("helpdesk+HD-17@osds.example",)), lookup)
    assert (link.ticket_id, link.rule) == (17, "reply_address")


def test_desks_may_refuse_colleagues_too() -> None:
    strict = Threader("HD", frozenset(), strangers="never")
    lookup = FakeLookup(participants={12: ANA})
    assert strict.link(make_message("x", sender="luis@hacienda.gob.mx", subject="[HD-12]"), lookup).ticket_id is None


# -- keyed references: a guessed number lets no one in -------------------------------------------------
KEYS = TicketKeys(b"a-test-secret-of-thirty-two-bytes!")
keyed = Threader("HD", frozenset({"gmail.com"}), keys=KEYS)


def test_a_colleague_guessing_the_number_starts_a_ticket_of_their_own() -> None:
    lookup = FakeLookup(participants={12: ANA})
    link = keyed.link(make_message("x", sender="luis@hacienda.gob.mx", subject="Re: [HD-12] datos"), lookup)
    assert link.ticket_id is None
    assert "gave no valid ticket key" in link.reason


def test_a_colleague_with_the_key_from_our_mail_joins() -> None:
    lookup = FakeLookup(participants={12: ANA})
    token = KEYS.token("HD", 12)
    by_subject = keyed.link(make_message("x", sender="luis@hacienda.gob.mx", subject=f"Re: datos [{token}]"), lookup)
    by_address = keyed.link(make_message("y", sender="luis@hacienda.gob.mx", subject="datos",
                                         recipients=(f"helpdesk+hd-12-{KEYS.key(12)}@osds.example",)), lookup)
    assert (by_subject.ticket_id, by_address.ticket_id) == (12, 12)
    assert "the ticket key matches" in by_subject.reason


def test_a_wrong_key_or_another_tickets_key_is_no_key() -> None:
    lookup = FakeLookup(participants={12: ANA, 13: ANA})
    wrong = keyed.link(make_message("x", sender="luis@hacienda.gob.mx", subject=f"[HD-12-{KEYS.key(13)}]"), lookup)
    assert wrong.ticket_id is None


def test_the_participant_needs_no_key() -> None:
    lookup = FakeLookup(participants={12: ANA})
    assert keyed.link(make_message("x", subject="Re: [HD-12] datos"), lookup).ticket_id == 12


def test_keys_are_stable_short_and_differ_per_ticket() -> None:
    assert KEYS.key(12) == TicketKeys(b"a-test-secret-of-thirty-two-bytes!").key(12)
    assert KEYS.key(12) != KEYS.key(13)
    assert len(KEYS.key(12)) == 6
    assert KEYS.key(12) != TicketKeys(b"another-secret-of-thirty-two-byte").key(12)
