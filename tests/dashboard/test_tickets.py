"""The queue and the ticket page: filters, SLA clocks, the conversation (no raw HTML), and every action through TicketActions."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update

from storage import audit
from storage.intake_store import MESSAGE, TICKET
from storage.outbox import OUTBOX
from tests.dashboard.conftest import Site, csrf

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def _ticket(site: Site, ticket_id: int):  # noqa: ANN202
    with site.runtime.engine.connect() as c:
        return c.execute(select(TICKET).where(TICKET.c.id == ticket_id)).one()


def _form(client, path: str) -> dict[str, str]:  # noqa: ANN001
    page = client.get(path).text
    return {"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page).group(1),
            "attempt": re.search(r'name="attempt" value="([^"]+)"', page).group(1)}


def test_given_tickets_when_the_queue_is_filtered_then_only_matching_ones_show(site: Site) -> None:
    gov = site.open_ticket("q1@x", sender="a@finance.gov.uk", subject="Schema question about tender values")
    other = site.open_ticket("q2@x", sender="b@example.com", subject="Where is the training calendar?")
    client = site.sign_in("ana")

    everything = client.get("/tickets").text
    searched = client.get("/tickets", params={"q": "training calendar"}).text
    by_number = client.get("/tickets", params={"q": f"HD-{gov}"}).text
    resolved_only = client.get("/tickets", params={"status": "resolved"}).text

    assert f"HD-{gov}" in everything
    assert f"HD-{other}" in everything
    assert f"HD-{other}" in searched
    assert f"HD-{gov}<" not in searched
    assert f">HD-{gov}<" in by_number
    assert f">HD-{other}<" not in by_number
    assert "No tickets match." in resolved_only


def test_given_a_breached_ticket_when_filtering_by_sla_then_it_shows_as_breached(site: Site) -> None:
    late = site.open_ticket("s1@x", subject="Late one")
    fine = site.open_ticket("s2@x", subject="Fine one")
    with site.runtime.engine.begin() as c:
        c.execute(update(TICKET).where(TICKET.c.id == late).values(first_response_due_at=TICKET.c.created_at))
    client = site.sign_in("ana")

    page = client.get("/tickets", params={"sla": "breached"}).text

    assert f">HD-{late}<" in page
    assert "breached" in page
    assert f">HD-{fine}<" not in page


def test_given_new_tickets_the_live_fragment_marks_them_fresh(site: Site) -> None:
    first = site.open_ticket("f1@x")
    client = site.sign_in("ana")
    newest = client.get("/tickets/rows").headers["x-newest-ticket"]
    second = site.open_ticket("f2@x", sender="other@example.org", subject="Another")

    rows = client.get("/tickets/rows", params={"seen": newest})

    assert rows.headers["x-newest-ticket"] == str(second)
    assert f'data-id="{second}" class="fresh"' in rows.text
    assert f'data-id="{first}" class="fresh"' not in rows.text


def test_given_html_mail_then_the_page_shows_text_by_default_and_only_sanitised_html_on_request(site: Site) -> None:
    ticket_id = site.open_ticket("h1@x", text="Plain words here")
    with site.runtime.engine.begin() as c:
        c.execute(update(MESSAGE).where(MESSAGE.c.ticket_id == ticket_id).values(
            html='<p onclick="steal()">Hi <b>there</b></p><script>alert(1)</script><img src="https://tracker.example/p.gif">'
                 '<a href="javascript:alert(2)">x</a>'))
    client = site.sign_in("ana")

    plain = client.get(f"/tickets/HD-{ticket_id}").text
    formatted = client.get(f"/tickets/HD-{ticket_id}", params={"html": "1"}).text

    assert "Plain words here" in plain
    assert "<b>there</b>" not in plain
    assert "<b>there</b>" in formatted
    for bad in ("<script", "onclick", "tracker.example", "javascript:"):
        assert bad not in formatted


def test_given_a_member_when_working_a_ticket_then_each_action_changes_it_once(site: Site) -> None:
    ticket_id = site.open_ticket("w1@x")
    client = site.sign_in("ana")
    page = f"/tickets/HD-{ticket_id}"

    claim = client.post(f"{page}/claim", data=_form(client, page))
    assert claim.status_code == 303
    assert _ticket(site, ticket_id).assignee == "ana"
    form = _form(client, page)
    reply = client.post(f"{page}/reply", data={**form, "text": "Here is the answer."})
    client.post(f"{page}/reply", data={**form, "text": "Here is the answer."})  # the same form twice: one reply
    client.post(f"{page}/note", data={**_form(client, page), "text": "internal only"})
    client.post(f"{page}/assign", data={**_form(client, page), "member": "tom"})
    client.post(f"{page}/reclassify", data={**_form(client, page), "field": "type", "value": "tools"})
    client.post(f"{page}/pending", data=_form(client, page))
    pending = _ticket(site, ticket_id).status
    client.post(f"{page}/resolve", data=_form(client, page))
    resolved = _ticket(site, ticket_id)

    assert reply.status_code == 303
    with site.runtime.engine.connect() as c:
        out = c.execute(select(MESSAGE.c.kind, MESSAGE.c.text).where(MESSAGE.c.ticket_id == ticket_id, MESSAGE.c.direction == "out")).all()
        keys = [r.key for r in c.execute(select(OUTBOX.c.key).where(OUTBOX.c.ticket_id == ticket_id, OUTBOX.c.kind == "send_reply"))]
    assert sorted((r.kind, r.text) for r in out) == [("note", "internal only"), ("reply", "Here is the answer.")]
    assert len(keys) == 1
    assert (pending, resolved.status, resolved.assignee, resolved.type) == ("pending", "resolved", "tom", "tools")
    assert "Resolve: Done" in client.get(page).text or "Reopen" in client.get(page).text


def test_given_documentation_suggestions_when_a_member_ticks_one_then_the_reply_carries_its_link(site: Site) -> None:
    # Given a ticket with two documentation suggestions, one of them without a usable link
    ticket_id = site.open_ticket("docs1@x")
    suggestions = [{"title": "Validating data", "url": "https://standard.example/validate"},
                   {"title": "Not a link", "url": "javascript:alert(1)"},
                   {"title": "Publishing", "url": "https://standard.example/publish"}]
    with site.runtime.engine.begin() as c:
        c.execute(update(TICKET).where(TICKET.c.id == ticket_id).values(suggestions=suggestions, language="en"))
    client = site.sign_in("ana")
    page = f"/tickets/HD-{ticket_id}"
    offered = client.get(page).text

    # When she replies with the second offered link ticked (and a position that does not exist)
    client.post(f"{page}/reply", data={**_form(client, page), "text": "Have a look.", "doc": ["1", "7"]})

    # Then only usable links are offered, and the reply is her words plus the ticked page under the desk's heading
    with site.runtime.engine.connect() as c:
        sent = c.execute(select(MESSAGE.c.text).where(MESSAGE.c.ticket_id == ticket_id, MESSAGE.c.direction == "out")).scalar_one()
    assert offered.count('name="doc"') == 2
    assert "javascript:" not in offered
    assert sent.startswith("Have a look.\n")
    assert "These pages of the documentation may already help:" in sent
    assert "- Publishing: https://standard.example/publish" in sent
    assert "standard.example/validate" not in sent


def test_given_a_manager_when_replying_then_403_nothing_changes_and_the_refusal_is_audited(site: Site) -> None:
    ticket_id = site.open_ticket("m1@x")
    client = site.sign_in("maria")
    page = f"/tickets/HD-{ticket_id}"
    assert client.get(page).status_code == 200  # managers may look

    refused = client.post(f"{page}/reply", data={**_form(client, page), "text": "I should not"})
    forged = client.post(f"{page}/resolve", data={"csrf_token": "forged-" * 6, "attempt": "abcdefgh1"})

    assert refused.status_code == 403
    assert forged.status_code == 403
    with site.runtime.engine.connect() as c:
        assert c.execute(select(MESSAGE.c.id).where(MESSAGE.c.ticket_id == ticket_id, MESSAGE.c.direction == "out")).first() is None
    assert [(e.actor, e.action, e.target) for e in audit.entries(site.runtime.engine, outcome="refused")] == [("maria", "reply", f"HD-{ticket_id}")]
    assert _ticket(site, ticket_id).status != "resolved"


def test_unknown_tickets_are_404_and_strangers_are_sent_to_sign_in(site: Site) -> None:
    client = site.sign_in("ana")
    assert client.get("/tickets/HD-99999").status_code == 404
    assert client.get("/tickets/XX-1").status_code == 404
    assert site.client().get("/tickets/HD-1").status_code == 303
    assert site.client().post("/tickets/HD-1/resolve", data={"csrf_token": csrf(site.client(), "/login"), "attempt": "abcdefgh1"}).status_code == 303


def test_given_a_signed_out_browser_the_live_fragment_answers_401_not_the_sign_in_page(site: Site) -> None:
    response = site.client().get("/tickets/rows")
    assert response.status_code == 401
    assert "<form" not in response.text


def test_a_flash_survives_the_live_fragment_until_the_page_shows_it(site: Site) -> None:
    ticket_id = site.open_ticket("fl1@x")
    client = site.sign_in("ana")
    page = f"/tickets/HD-{ticket_id}"
    client.post(f"{page}/claim", data=_form(client, page))

    client.get("/tickets/rows")

    assert "Claim: Done" in client.get(page).text
