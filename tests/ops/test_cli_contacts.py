"""One person across channels at the command line: `contacts show`, `contacts link`, and their other open tickets."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine

from storage import audit
from tests.cli import run_cli
from tests.ops.test_cli_desk import desk_env, engine_of, seed_ticket  # noqa: F401 - fixtures

X_NAME = "Ana Gómez (@ana_gomez)"  # how intake names an X sender


def _json(args: list[str], env: dict[str, str]) -> Any:
    return json.loads(run_cli([*args, "--json"], env).stdout)


def test_given_an_x_enquirer_when_listed_then_they_appear_as_username_and_name(engine_of: Engine, desk_env: dict[str, str]) -> None:  # noqa: F811
    seed_ticket(engine_of, channel="x", address="1234567", name=X_NAME, subject="Is there an API?")
    contact = _json(["contacts", "show", "@ana_gomez"], desk_env)
    assert [i["label"] for i in contact["identities"]] == ["@ana_gomez (Ana Gómez)"]
    assert _json(["tickets"], desk_env)[0]["enquirer"] == "@ana_gomez (Ana Gómez)"


def test_given_one_person_on_two_channels_when_linked_then_their_identities_and_tickets_are_together(
        engine_of: Engine, desk_env: dict[str, str]) -> None:  # noqa: F811
    # Given Ana wrote by e-mail and on X: two contacts
    by_mail = seed_ticket(engine_of, address="ana@hacienda.gob.mx", name="Ana Gómez")
    on_x = seed_ticket(engine_of, channel="x", address="1234567", name=X_NAME, subject="Is there an API?")
    # When staff link them (and run the same link again)
    linked = run_cli(["contacts", "link", "ana@hacienda.gob.mx", "@ana_gomez"], desk_env).stdout
    again = run_cli(["contacts", "link", "ana@hacienda.gob.mx", "@ana_gomez"], desk_env).stdout
    # Then one contact holds both identities and both tickets
    contact = _json(["contacts", "show", "ana@hacienda.gob.mx"], desk_env)
    assert "linked:" in linked
    assert "unchanged" in again
    assert {(i["channel"], i["address"]) for i in contact["identities"]} == {("email", "ana@hacienda.gob.mx"), ("x", "1234567")}
    assert {t["number"] for t in contact["tickets"]} == {f"HD-{by_mail}", f"HD-{on_x}"}
    # And the ticket shows the person's other open ticket; the link is in the audit log
    assert _json(["show", f"HD-{by_mail}"], desk_env)["other_open_tickets"] == [f"HD-{on_x}"]
    assert [e.outcome for e in audit.entries(engine_of, action="contact.link")] == ["done"]
