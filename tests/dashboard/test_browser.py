"""In a real browser (headless Chromium from Debian's package, driven by Playwright) against the real app on a real port:
a member signs in and works a ticket until the reply reaches the SMTP server, a manager sees the charts, and an
enquirer's form submission appears in the open queue without a reload. Each page is saved as a screenshot in the
test's folder (and in ``HDTEST_SCREENSHOTS``, when set: ``docs/screenshots`` for the README)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from config.settings import Settings
from tests.dashboard.conftest import PASSWORD, SECRET, Site
from tests.servers.smtp import SmtpServer
from config.queues import enqueue_effect

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium package is not installed")]


@pytest.fixture
def web_settings(settings: Settings, smtp: SmtpServer) -> Settings:
    return settings.model_copy(update={"secret_key": SecretStr(SECRET), "web_poll_seconds": 2, "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
                                       "smtp_security": "none", "mail_from": "helpdesk@osds.example",
                                       "acknowledge": False})


@pytest.fixture
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Shots:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.publish = Path(os.environ["HDTEST_SCREENSHOTS"]) if os.environ.get("HDTEST_SCREENSHOTS") else None

    def take(self, page, name: str) -> Path:  # noqa: ANN001
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if self.publish is not None:
            self.publish.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.publish / path.name)
        return path


def _until(condition, timeout: float = 20) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _due(site: Site, ticket_id: int) -> object:
    from sqlalchemy import select

    from storage.intake_store import TICKET

    with site.runtime.engine.connect() as c:
        return c.execute(select(TICKET.c.first_response_due_at).where(TICKET.c.id == ticket_id)).scalar()


def _sign_in(page, url: str, who: str) -> None:  # noqa: ANN001
    page.goto(f"{url}/login")
    page.fill("#username", who)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/tickets")


def test_a_member_signs_in_answers_assigns_and_resolves_and_the_reply_reaches_the_smtp_server(
    site: Site, browser, smtp: SmtpServer, running_worker, tmp_path: Path  # noqa: ANN001
) -> None:
    shots = Shots(tmp_path)
    ticket_id = site.open_ticket("b1@hacienda.gob.mx", sender="lucia@hacienda.gob.mx", name="Lucía Pérez",
                                 subject="Validation errors in our tender data")
    other = site.open_ticket("b2@x", sender="ben@example.org", name="Ben Okafor", subject="How do we map our procurement codes?")
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    with running_worker(site.runtime.engine, site.runtime.settings):
        for number in (ticket_id, other):  # the worker assigns (or backlogs, off shift) and sets the SLA clocks
            enqueue_effect(site.runtime.broker, f"assign:{number}")
        _until(lambda: all(_due(site, n) for n in (ticket_id, other)))
        _sign_in(page, site.url, "ana")
        assert page.locator("#queue .sla-ok, #queue .sla-at_risk, #queue .sla-breached").count() == 2
        assert page.locator(f"#queue tr[data-id='{ticket_id}']").count() == 1
        shots.take(page, "queue")
        page.click(f"text=HD-{ticket_id}")
        page.wait_for_selector("h1:has-text('Validation errors')")
        page.click("form[action$='/claim'] button")
        page.wait_for_selector(".flash:has-text('Claim: Done')")
        page.fill("#reply-text", "Dear Lucía, the tender value needs a currency. Best, Ana")
        page.click("form[action$='/reply'] button")
        page.wait_for_selector(".flash:has-text('Reply: Done')")
        [mail] = smtp.wait_for(1)
        page.select_option("#member", "tom")
        page.click("form[action$='/assign'] button")
        page.wait_for_selector(".flash:has-text('Assign: Done')")
        page.reload()
        shots.take(page, "ticket")
        page.click("form[action$='/resolve'] button")
        page.wait_for_selector(".flash:has-text('Resolve: Done')")

    assert mail.rcpt_tos == ("lucia@hacienda.gob.mx",)
    assert "the tender value needs a currency" in mail.message.get_content()
    assert f"HD-{ticket_id}" in mail.message["Subject"]
    ticket = site.runtime.engine.connect().execute(__import__("sqlalchemy").text(f"select status, assignee from ticket where id={ticket_id}")).one()
    assert tuple(ticket) == ("resolved", "tom")
    assert (tmp_path / "queue.png").stat().st_size > 10_000


def test_a_manager_sees_the_month_rendered_as_charts(site: Site, browser, tmp_path: Path) -> None:  # noqa: ANN001
    from storage.models import utcnow

    for i, (sender, subject) in enumerate([("a@finance.gov.uk", "Schema question"), ("b@ngo.org", "Training request"),
                                          ("c@uni.edu", "Data quality of awards"), ("d@finance.gov.uk", "Publication timing")]):
        site.open_ticket(f"chart{i}@x", sender=sender, subject=subject, received_at=utcnow())
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, site.url, "maria")

    page.click("nav >> text=Reports")
    page.wait_for_selector("svg.chart")
    chart = page.locator("svg.chart").first
    box = chart.bounding_box()
    bars = page.locator("svg.chart rect[fill='#0072B2']").count()
    Shots(tmp_path).take(page, "reports")

    assert box is not None
    assert box["width"] > 300
    assert box["height"] > 150
    assert bars >= 1
    assert page.locator("nav >> text=Operations").count() == 0  # a manager is no operator


def test_an_enquirers_form_submission_appears_in_the_open_queue_without_reloading(
    site: Site, browser, running_worker, tmp_path: Path  # noqa: ANN001
) -> None:
    shots = Shots(tmp_path)
    staff = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in(staff, site.url, "ana")
    context = browser.new_context(locale="es-ES", extra_http_headers={"Accept-Language": "es-ES,es;q=0.9"})
    enquirer = context.new_page()

    with running_worker(site.runtime.engine, site.runtime.settings):
        enquirer.goto(f"{site.url}/enquiry")
        assert enquirer.locator("h1").inner_text() == "Consulte a la mesa de ayuda"
        enquirer.fill("#name", "Lucía Pérez")
        enquirer.fill("#email", "lucia@hacienda.gob.mx")
        enquirer.fill("#organisation", "Secretaría de Hacienda")
        enquirer.fill("#subject", "Publicación de contratos abiertos")
        enquirer.fill("#message", "Hola, ¿cómo publicamos nuestros contratos con el estándar de datos?")
        shots.take(enquirer, "enquiry")
        enquirer.click("button[type=submit]")
        enquirer.wait_for_selector("#reference")
        shots.take(enquirer, "enquiry-done")
        reference = enquirer.locator("#reference").inner_text()
        started = time.monotonic()
        staff.wait_for_selector("#queue tr:has-text('Publicación de contratos abiertos')", timeout=30_000)
        appeared = time.monotonic() - started
        shots.take(staff, "queue-live")

    assert reference.startswith("WEB-")
    assert staff.url.endswith("/tickets")  # the staff page was never reloaded
    row = staff.locator("#queue tr:has-text('Publicación de contratos abiertos')")
    assert "web" in row.inner_text()
    assert appeared < 30
