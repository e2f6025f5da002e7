"""Fault injection over real processes: a 1,000-message IMAP mailbox, the adapter and two workers.

Everything runs for real and privately: a Dovecot (``tests.dovecot``), a PostgreSQL cluster
(``initdb`` into a temp dir, run as the ``postgres`` OS user), a ``redis-server`` with
append-only persistence (``appendfsync everysec``) on a free port, and the ``helpdesk intake
imap`` and ``helpdesk worker`` commands as subprocesses configured by ``HELPDESK_*`` variables.

A ``Run`` feeds the mailbox by IMAP APPEND at a steady rate while faults are injected —
SIGKILL of workers and the adapter (which the run restarts), Redis restarts (SIGTERM, SIGKILL),
a PostgreSQL outage — then waits, bounded, for the pipeline to settle, and checks that every
appended item is accounted for exactly once. Each subprocess writes its log to the run's
folder; ``Run.close`` stops every process and server even after a failure.

Accounting (the README's definitions): every appended item is exactly one of a new ticket, a
duplicate (an exact copy appended again: same bytes, same Message-ID, another UID), a threaded
reply, an automated mail or a quarantined input. An adapter re-reading the same UID after a
crash or on start (its overlap window) is not a duplicate. Redis with ``appendfsync everysec``
may lose up to one second of writes on SIGKILL: the adapter's checkpoint lives in the same
Redis, so a lost enqueue comes with a lost checkpoint advance and the adapter reads the
message again; nothing needs to be lost, and nothing is allowed to be.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import redis
from imapclient import IMAPClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from storage.db import reading
from tests.servers.base import free_port

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "emails"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
MAIL_FROM = "helpdesk@osds.example"
QUEUES = ("intake", "effects", "scheduled", "slack")


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> float:
    """Seconds until ``condition()`` held; RuntimeError naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if condition():
                return time.monotonic() - started
        except Exception:  # noqa: BLE001 - a server still starting refuses connections
            pass
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


# -- the mailbox ------------------------------------------------------------------------------------

DOMAINS = [
    "finance.gov.uk", "hacienda.gob.mx", "compras.gov.br", "marchespublics.gouv.fr", "ppa.go.ug", "procurement.gov.ph",
    "opengovwatch.org", "transparencia.org.co", "civicdata.ngo", "procuresoft.com", "tenderdata.io", "ucl.ac.uk",
    "usp.br", "worldbank.org", "gmail.com", "outlook.com",
]
NAMES = ["Ana Gómez", "John Smith", "Marie Dupont", "João Silva", "Grace Akello", "Li Wei", "Sara Rossi", "Peter Okafor"]
ENQUIRIES = [
    ("Validation errors in our tender data", "Hello, the data review tool shows validation errors for tender/value and buyer.id "
     "in release {i}. How should we fix the mapping of our procurement system? Regards"),
    ("How to publish contracts data", "Hi, we are starting to publish contracting data from our e-procurement portal. "
     "Which fields are mandatory, and how often should we update the bulk file? (enquiry {i})"),
    ("Pregunta sobre la lista de códigos", "Buenos días, ¿cuál es el código correcto para un procedimiento de licitación "
     "selectiva en la lista de códigos de método? Consulta número {i}. Saludos cordiales"),
    ("Question sur le schéma des contrats", "Bonjour, nous avons une question sur l'extension des lots et la date de "
     "signature des contrats dans notre publication (demande {i}). Cordialement"),
    ("Como publicar os dados de compras", "Olá, como devemos publicar os dados das licitações do nosso município e validar "
     "o arquivo JSON? Pedido número {i}. Atenciosamente"),
    ("Data quality of our OCDS feed", "Dear helpdesk, our OCDS feed for {i} has duplicate ocids and missing award dates. "
     "Could you review the data and advise on the identifiers? Thank you"),
    ("Training request for our procurement agency", "Hello, our agency would like a training session on using the "
     "standard for monitoring and on analysing red flags (request {i}). Best wishes"),
]


@dataclass
class Item:
    """One APPEND: its bytes, what the pipeline must make of it, and the Message-ID it carries."""

    index: int
    kind: str  # new | reply | auto | dup | real
    raw: bytes
    message_id: str | None  # without angle brackets
    parent: str | None = None  # reply / auto: the enquiry it answers; dup: the Message-ID it repeats
    origin: str = ""  # real: the corpus file
    uid: int | None = None
    appended_at: float | None = None


@dataclass
class Mailbox:
    items: list[Item]
    seed: int

    def count(self, kind: str) -> int:
        return sum(1 for i in self.items if i.kind == kind)

    def composition(self) -> dict[str, int]:
        return dict(Counter(i.kind for i in self.items))


def _enquiry(i: int, rng: random.Random, when: datetime) -> tuple[bytes, str, str, str]:
    domain = DOMAINS[i % len(DOMAINS)]
    name = NAMES[rng.randrange(len(NAMES))]
    address = f"{name.split()[0].lower().replace('ã', 'a').replace('ã', 'a').replace('ó', 'o')}{i % 53}@{domain}"
    address = address.encode("ascii", "ignore").decode()
    subject, body = ENQUIRIES[i % len(ENQUIRIES)]
    subject = f"{subject} ({i})"
    mid = f"f{i}.{rng.randrange(10**9)}@{domain}"
    msg = EmailMessage()
    msg["From"] = f"{name} <{address}>"
    msg["To"] = f"OSDS Helpdesk <{MAIL_FROM}>"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<{mid}>"
    msg.set_content(body.format(i=i) + f"\n\n{name}\n")
    return msg.as_bytes(), mid, f"{name} <{address}>", subject


def _reply(i: int, parent: Item, sender: str, subject: str, when: datetime) -> tuple[bytes, str]:
    mid = f"r{i}@{sender.rsplit('@', 1)[1].rstrip('>')}"
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = f"OSDS Helpdesk <{MAIL_FROM}>"
    msg["Subject"] = f"Re: {subject}"
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<{mid}>"
    msg["In-Reply-To"] = f"<{parent.message_id}>"
    msg["References"] = f"<{parent.message_id}>"
    msg.set_content(f"Thank you. One more detail about this (follow-up {i}): the file is attached in our portal.\n\n"
                    f"On Mon, someone wrote:\n> earlier text\n")
    return msg.as_bytes(), mid


def _automated(i: int, parent: Item, sender: str, subject: str, when: datetime, flavour: str) -> tuple[bytes, str]:
    domain = sender.rsplit("@", 1)[1].rstrip(">")
    mid = f"a{i}@{domain}"
    if flavour == "bounce":  # RFC 3464, written out: the stdlib cannot build message/delivery-status parts
        boundary = f"=_bounce_{i}"
        raw = (
            f"From: Mail Delivery System <MAILER-DAEMON@mx.{domain}>\r\nTo: {MAIL_FROM}\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nDate: {format_datetime(when)}\r\nMessage-ID: <{mid}>\r\n"
            f"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            f"This is the mail system at host mx.{domain}.\r\nYour message could not be delivered.\r\n\r\n"
            f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; mx.{domain}\r\n\r\nFinal-Recipient: rfc822; nobody@{domain}\r\nAction: failed\r\n"
            f"Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"From: {MAIL_FROM}\r\nTo: nobody@{domain}\r\nSubject: Re: {subject}\r\nMessage-ID: <{parent.message_id}>\r\n\r\n"
            f"--{boundary}--\r\n"
        )
        return raw.encode("utf-8"), mid
    elif flavour == "ooo":
        outer = EmailMessage()
        outer["From"] = sender
        outer["Subject"] = f"Out of office: Re: {subject}"
        outer["Auto-Submitted"] = "auto-replied"
        outer["In-Reply-To"] = f"<{parent.message_id}>"
        outer.set_content(f"I am out of the office until next week and will reply on my return ({i}).")
    else:  # newsletter
        outer = EmailMessage()
        outer["From"] = f"Open Data Newsletter <news@lists.{domain}>"
        outer["Subject"] = f"Open data digest no. {i}"
        outer["Precedence"] = "bulk"
        outer["List-Id"] = f"<digest.lists.{domain}>"
        outer["List-Unsubscribe"] = f"<mailto:unsubscribe@lists.{domain}>"
        outer.set_content(f"This week in open data: issue {i}.")
    outer["To"] = MAIL_FROM
    outer["Date"] = format_datetime(when)
    outer["Message-ID"] = f"<{mid}>"
    return outer.as_bytes(), mid


def _header_message_id(raw: bytes) -> str | None:
    try:
        parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
        value = parsed.get("Message-ID")
    except Exception:  # noqa: BLE001
        return None
    if not value:
        return None
    match = re.search(r"<([^<>\s]{1,900})>", str(value))
    return match.group(1) if match else None


def real_mails(rng: random.Random, bounces: int, others: int) -> list[tuple[str, bytes, str]]:
    """(corpus path, bytes, Message-ID) of real mails read in place, each with a distinct Message-ID."""
    if not CORPUS.is_dir():
        return []
    robots = sorted(p for p in (CORPUS / "sisimai-set-of-emails").rglob("*.eml") if p.stat().st_size < 64_000)
    people = sorted(p for d in ("mailgun-talon", "mailgun-flanker", "django-helpdesk") for p in (CORPUS / d).rglob("*.eml")
                    if p.stat().st_size < 64_000)
    chosen: list[tuple[str, bytes, str]] = []
    seen: set[str] = set()
    for pool, wanted in ((robots, bounces), (people, others)):
        taken = 0
        for path in rng.sample(pool, len(pool)):
            if taken == wanted:
                break
            raw = path.read_bytes()
            mid = _header_message_id(raw)
            if not mid or mid in seen:
                continue
            seen.add(mid)
            chosen.append((str(path.relative_to(CORPUS)), raw, mid))
            taken += 1
    return chosen


def build_mailbox(seed: int = 13, total: int = 1000, replies: int = 100, dups: int = 60, autos: int = 60,
                  real_bounces: int = 20, real_others: int = 10) -> Mailbox:
    """A deterministic mailbox of ``total`` items: new enquiries, replies to earlier ones, exact repeats, robots, real mail."""
    rng = random.Random(seed)
    real = real_mails(rng, real_bounces, real_others)
    news = total - replies - dups - autos - len(real)
    plan = ["new"] * 20 + (["new"] * (news - 20) + ["reply"] * replies + ["dup"] * dups + ["auto"] * autos + ["real"] * len(real))[:]
    head, tail = plan[:20], plan[20:]
    rng.shuffle(tail)
    plan = head + tail
    start = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
    items: list[Item] = []
    enquiries: list[tuple[Item, str, str]] = []  # (item, sender, subject)
    repeatable: list[Item] = []
    real_iter = iter(real)
    for index, kind in enumerate(plan):
        when = start + timedelta(minutes=10 * index)
        if kind == "new":
            raw, mid, sender, subject = _enquiry(index, rng, when)
            item = Item(index, "new", raw, mid)
            enquiries.append((item, sender, subject))
            repeatable.append(item)
        elif kind == "reply":
            parent, sender, subject = rng.choice(enquiries)
            raw, mid = _reply(index, parent, sender, subject, when)
            item = Item(index, "reply", raw, mid, parent=parent.message_id)
            repeatable.append(item)
        elif kind == "auto":
            parent, sender, subject = rng.choice(enquiries)
            flavour = ("bounce", "ooo", "newsletter")[index % 3]
            raw, mid = _automated(index, parent, sender, subject, when, flavour)
            item = Item(index, "auto", raw, mid, parent=parent.message_id, origin=flavour)
        elif kind == "dup":
            original = rng.choice(repeatable)
            item = Item(index, "dup", original.raw, original.message_id, parent=original.message_id)
        else:
            origin, raw, mid = next(real_iter)
            item = Item(index, "real", raw, mid, origin=origin)
        items.append(item)
    return Mailbox(items, seed)


# -- servers --------------------------------------------------------------------------------------

def _as_postgres(*args: str, log: Path, timeout: float = 60) -> None:
    """Run a PostgreSQL binary as the postgres OS user; its output goes to ``log`` (never a pipe:
    the postmaster pg_ctl starts would hold a pipe open)."""
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(args)}\n".encode())
        out.flush()
        result = subprocess.run(["runuser", "-u", "postgres", "--", *args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {result.returncode}; see {log}:\n{log.read_text(errors='replace')[-2000:]}")


class PostgresCluster:
    """A private cluster: initdb into a temp dir owned by ``postgres``, a free port, its socket in the dir."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hdfaults-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = self.root / "postgres.log"
        self.tool_log = self.root / "pg_ctl.log"
        self.port = free_port()
        self.sock.mkdir()
        self.log.touch()
        self.tool_log.touch()
        shutil.chown(self.root, "postgres", "postgres")
        for path in (self.sock, self.log, self.tool_log):
            shutil.chown(path, "postgres", "postgres")
        self.root.chmod(0o755)

    def init(self) -> None:
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                     "--no-sync", "--locale=C", log=self.tool_log)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c max_connections=200 -c shared_buffers=64MB")
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options,
                     "start", log=self.tool_log, timeout=90)

    def stop(self, mode: str = "fast") -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop",
                     log=self.tool_log, timeout=90)

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)

    def close(self) -> None:
        """Stop whatever runs, however it can be stopped; then remove the cluster."""
        if self.running:
            try:
                self.stop("immediate")
            except Exception:  # noqa: BLE001 - fall back to the signal
                pid_file = self.data / "postmaster.pid"
                try:
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
                except (OSError, ValueError, IndexError):
                    pass
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.tool_log, self.log) if p.exists())


class RedisServer:
    """redis-server with AOF (everysec) on a fixed free port and a dir of its own; restartable in place."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.peak_rss_kb = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.starts += 1
        log = open(self.dir / "redis.out", "ab")  # noqa: SIM115 - kept by the process
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--appendonly", "yes",
             "--appendfsync", "everysec", "--save", "", "--daemonize", "no", "--logfile", str(self.dir / "redis.log"),
             "--protected-mode", "no"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            wait_until(lambda: self._alive() and client.ping(), 30, "redis-server to answer PING")
            # Loading the AOF answers LOADING errors to PING; wait until the data set is loaded.
            wait_until(lambda: client.info("persistence").get("loading") == 0, 30, "redis-server to load its AOF")
        finally:
            client.close()

    def _alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int) -> None:
        """SIGTERM (clean: AOF flushed) or SIGKILL (the last second of writes may be lost)."""
        if self.process is None:
            return
        self.sample_rss()
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def sample_rss(self) -> None:
        if self._alive():
            self.peak_rss_kb = max(self.peak_rss_kb, peak_rss_kb(self.process.pid))

    def close(self) -> None:
        self.stop(signal.SIGKILL)


def peak_rss_kb(pid: int) -> int:
    """VmHWM: the highest resident set size the process has had (kB); 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


# -- helpdesk processes --------------------------------------------------------------------------

def helpdesk_command() -> list[str]:
    script = Path(sys.executable).parent / "helpdesk"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ops"]


class Proc:
    """One role (``adapter``, ``worker-0`` …) of the run: a `helpdesk` subprocess in its own process group.

    Each incarnation appends to the role's log file behind a header line; ``kill`` is SIGKILL of
    the whole group; exits the test did not cause are recorded.
    """

    def __init__(self, role: str, args: list[str], env: dict[str, str], log: Path, clock: Callable[[], float]) -> None:
        self.role, self.args, self.env, self.log, self.clock = role, args, env, log, clock
        self.process: subprocess.Popen | None = None
        self.incarnations = 0
        self.kills = 0
        self.unexpected_exits: list[dict[str, Any]] = []
        self.peak_rss_kb = 0
        self.ended_by_test: set[int] = set()  # incarnations the test killed or stopped

    def start(self) -> None:
        self.incarnations += 1
        with open(self.log, "ab") as out:
            out.write(f"\n===== {self.role} start #{self.incarnations} at t={self.clock():.2f}s =====\n".encode())
            out.flush()
            self.process = subprocess.Popen([*helpdesk_command(), *self.args], env=self.env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def poll(self) -> None:
        """Sample memory; record an exit nobody asked for (once)."""
        if self.process is None:
            return
        code = self.process.poll()
        if code is None:
            self.peak_rss_kb = max(self.peak_rss_kb, peak_rss_kb(self.process.pid))
        elif self.incarnations not in self.ended_by_test and not any(e["incarnation"] == self.incarnations for e in self.unexpected_exits):
            self.unexpected_exits.append({"incarnation": self.incarnations, "code": code, "t": round(self.clock(), 2)})

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        assert self.process is not None
        self.poll()
        self.kills += 1
        self.ended_by_test.add(self.incarnations)
        with open(self.log, "ab") as out:
            out.write(f"\n===== {self.role} SIGKILL at t={self.clock():.2f}s =====\n".encode())
        _signal_group(self.process, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, grace: float = 15) -> None:
        """SIGTERM, then SIGKILL of the group after ``grace`` seconds."""
        if self.process is None:
            return
        self.poll()
        self.ended_by_test.add(self.incarnations)
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.process, signal.SIGKILL)  # whatever the group still holds
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def grep(self, pattern: str, limit: int = 15) -> list[str]:
        if not self.log.exists():
            return []
        regex = re.compile(pattern)
        return [line for line in self.log.read_text(errors="replace").splitlines() if regex.search(line)][:limit]


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# -- feeding the mailbox --------------------------------------------------------------------------

APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")


class Feeder(threading.Thread):
    """APPENDs the items to INBOX: the first ``burst`` at once, the rest evenly over ``seconds``."""

    def __init__(self, host: str, port: int, user: str, password: str, items: list[Item], burst: int, seconds: float,
                 clock: Callable[[], float]) -> None:
        super().__init__(name="feeder", daemon=True)
        self.address, self.login = (host, port), (user, password)
        self.items, self.burst, self.seconds, self.clock = items, burst, seconds, clock
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.done_at: float | None = None

    def run(self) -> None:
        try:
            client = IMAPClient(self.address[0], port=self.address[1], ssl=False, timeout=30)
            client.login(*self.login)
            rest = max(1, len(self.items) - self.burst)
            started = self.clock()
            for n, item in enumerate(self.items):
                if self.stop_event.is_set():
                    return
                if n >= self.burst:
                    due = started + (n - self.burst + 1) * self.seconds / rest
                    if self.stop_event.wait(max(0.0, due - self.clock())):
                        return
                response = client.append("INBOX", item.raw)
                match = APPENDUID.search(response if isinstance(response, bytes) else str(response).encode())
                item.uid = int(match.group(1)) if match else None
                item.appended_at = self.clock()
            client.logout()
            self.done_at = self.clock()
        except BaseException as exc:  # noqa: BLE001 - reported by the run
            self.error = exc


# -- observation ------------------------------------------------------------------------------------

@dataclass
class Counts:
    tickets: int = 0
    duplicates: int = 0
    threaded: int = 0
    automated: int = 0
    quarantined: int = 0
    messages: int = 0
    distinct_message_ids: int = 0

    @property
    def accounted(self) -> int:
        return self.tickets + self.duplicates + self.threaded + self.automated + self.quarantined


COUNT_SQL = """
SELECT
  (SELECT count(*) FROM ticket),
  (SELECT count(*) FROM metric_event WHERE kind = 'duplicate'),
  (SELECT count(*) FROM message WHERE direction = 'in' AND kind = 'reply'),
  (SELECT count(*) FROM message WHERE kind = 'automated'),
  (SELECT count(*) FROM quarantine),
  (SELECT count(*) FROM message WHERE direction = 'in'),
  (SELECT count(DISTINCT message_id) FROM message WHERE direction = 'in')
"""


def read_counts(engine: Engine) -> Counts:
    # a reading connection: on SQLite a plain BEGIN, which does not take the writer's turn from the worker it watches
    with reading(engine) as c:
        return Counts(*[int(v) for v in c.execute(text(COUNT_SQL)).one()])


def queue_unfinished(client: redis.Redis, namespace: str = "helpdesk") -> dict[str, int]:
    """Per queue: ready + delayed + held (not yet acked) messages, and dead letters."""
    out = {}
    for q in QUEUES:
        base = f"{namespace}:{q}"
        pipe = client.pipeline(transaction=False)
        pipe.hlen(f"{base}.msgs")
        pipe.hlen(f"{base}.DQ.msgs")
        pipe.zcard(f"{base}.XQ")
        pending, delayed, dead = pipe.execute()
        out[q] = pending + delayed
        out[f"{q}.dead"] = dead
    return out


# -- the lab and a run -------------------------------------------------------------------------------

class Lab:
    """What the scenarios share: the PostgreSQL cluster and the Dovecot (one mailbox user per run)."""

    USERS = ("faults-a", "faults-b", "faults-c", "faults-d", "faults-e", "faults-f")
    PASSWORD = "faults-password"

    def __init__(self) -> None:
        from tests.dovecot import Dovecot  # noqa: PLC0415

        self.pg = PostgresCluster()
        dovecot_root = Path(tempfile.mkdtemp(prefix="hdfaults-dovecot-"))
        dovecot_root.chmod(0o755)
        self.dovecot = Dovecot(dovecot_root, with_ssl=False)
        self._users = iter(self.USERS)

    def start(self) -> None:
        self.pg.init()
        self.pg.start()
        self.dovecot.configure()
        for user in self.USERS:  # before start: Dovecot re-reads its passwd file only when it sees it change
            self.dovecot.add_user(user, self.PASSWORD)
        self.dovecot.start()

    def next_user(self) -> str:
        return next(self._users)

    def close(self) -> None:
        try:
            self.dovecot.stop()
        finally:
            shutil.rmtree(self.dovecot.root, ignore_errors=True)
            self.pg.close()


@dataclass
class Figures:
    scenario: str
    messages_sent: int = 0
    composition: dict[str, int] = field(default_factory=dict)
    feed_seconds: float | None = None
    settle_after_feed_seconds: float | None = None
    total_seconds: float | None = None
    settled: bool = False
    kills: dict[str, int] = field(default_factory=dict)
    restarts_by_test: dict[str, int] = field(default_factory=dict)
    unexpected_exits: dict[str, list] = field(default_factory=dict)
    redis_restarts: list[str] = field(default_factory=list)
    postgres_outage_seconds: float = 0.0
    resumed_after_seconds: dict[str, float | None] = field(default_factory=dict)  # outage over → next message stored
    counts: dict[str, int] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    dead_letters: int = 0
    failed_attempts: int = 0  # "Failed to process message" lines of the workers: each one a retry (or a dead letter)
    adapter_loop_restarts: int = 0  # the adapter's own restarts of its folder loop (its health record), not the test's
    redelivered: int = 0  # deliveries the pipeline recognised as already stored (crash redeliveries, adapter re-reads)
    inflight_keys_left: int = 0
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class Run:
    """One scenario: a fresh database, Redis, mailbox and data dir; the adapter and two workers."""

    def __init__(self, lab: Lab, name: str, folder: Path, model_dir: Path, mailbox: Mailbox, *, workers: int = 2,
                 feed_seconds: float = 30.0, burst: int = 150, poll_seconds: int = 10, settle_timeout: float = 150.0,
                 stall_seconds: float = 45.0) -> None:
        self.lab, self.name, self.folder, self.mailbox = lab, name, folder, mailbox
        self.feed_seconds, self.burst, self.settle_timeout, self.stall_seconds = feed_seconds, burst, settle_timeout, stall_seconds
        self.poll_seconds = poll_seconds
        self.t0 = time.monotonic()
        self.figures = Figures(name, messages_sent=len(mailbox.items), composition=mailbox.composition())
        self.user = lab.next_user()
        self.database_url = lab.pg.create_database(f"faults_{name}_{os.getpid()}")
        self.redis = RedisServer(folder / "redis")
        self.engine = create_engine(self.database_url, pool_pre_ping=True, pool_size=2,
                                    connect_args={"connect_timeout": 3})
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
        env.update({
            "HELPDESK_DATA_DIR": str(folder / "data"),
            "HELPDESK_MODEL_DIR": str(model_dir),
            "HELPDESK_DATABASE_URL": self.database_url,
            "HELPDESK_REDIS_URL": self.redis.url,
            "HELPDESK_IMAP_HOST": "127.0.0.1",
            "HELPDESK_IMAP_PORT": str(lab.dovecot.port),
            "HELPDESK_IMAP_USER": self.user,
            "HELPDESK_IMAP_PASSWORD": lab.PASSWORD,
            "HELPDESK_IMAP_SSL": "false",
            "HELPDESK_IMAP_POLL_SECONDS": str(poll_seconds),
            "HELPDESK_IMAP_TIMEOUT_SECONDS": "10",
            # A wide overlap: every adapter restart re-reads 100 UIDs, so re-reads of exact copies (which must not
            # count as duplicates) happen in every run instead of by luck.
            "HELPDESK_IMAP_OVERLAP": "100",
            "HELPDESK_MAIL_FROM": MAIL_FROM,
            "HELPDESK_ACKNOWLEDGE": "false",
            "HELPDESK_HEARTBEAT_TIMEOUT_SECONDS": "5",
            "HELPDESK_PARENT_WAIT_SECONDS": "30",
            "HELPDESK_WORKER_THREADS": "4",
            "HELPDESK_MAX_BACKOFF_MS": "10000",
            "HELPDESK_LOG_LEVEL": "INFO",
            "COLUMNS": "200",
            "PYTHONUNBUFFERED": "1",
        })
        self.env = env
        logs = folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.procs = {"adapter": Proc("adapter", ["intake", "imap"], env, logs / "adapter.log", self.clock)}
        for i in range(workers):
            self.procs[f"worker-{i}"] = Proc(f"worker-{i}", ["worker"], env, logs / f"worker-{i}.log", self.clock)
        self.feeder: Feeder | None = None
        self.redis_client: redis.Redis | None = None
        self.outages_ended: dict[str, float] = {}  # fault → wall-clock time the server was back

    # -- life cycle --------------------------------------------------------------------------------
    def clock(self) -> float:
        return time.monotonic() - self.t0

    def event(self, what: str) -> None:
        self.figures.events.append(f"t={self.clock():6.2f}s {what}")

    def start(self) -> None:
        """Redis, the schema (`helpdesk db upgrade`), two workers and the adapter; then wait until all are up."""
        self.redis.start()
        self.redis_client = redis.Redis.from_url(self.redis.url, socket_timeout=2, socket_connect_timeout=2)
        upgrade = subprocess.run([*helpdesk_command(), "db", "upgrade"], env=self.env, cwd=ROOT, capture_output=True, text=True,
                                 timeout=120)
        if upgrade.returncode != 0:
            raise RuntimeError(f"helpdesk db upgrade failed: {upgrade.stdout}\n{upgrade.stderr}")
        for proc in self.procs.values():
            proc.start()
        workers = [p for r, p in self.procs.items() if r.startswith("worker")]
        wait_until(lambda: self._check_alive() and self.redis_client.zcard("helpdesk:__heartbeats__") >= len(workers), 90,
                   "both workers to send heartbeats")
        wait_until(lambda: self._check_alive() and any(self.redis_client.scan_iter(match="helpdesk:adapters:imap:*")), 60,
                   "the adapter's first sync")
        self.event("adapter and workers up")

    def _check_alive(self) -> bool:
        dead = {r: p.process.poll() for r, p in self.procs.items() if not p.alive}
        if dead:
            raise RuntimeError(f"exited while starting: {dead}\n" + "\n".join(p.tail(30) for p in self.procs.values()))
        return True

    def feed(self) -> None:
        self.feeder = Feeder("127.0.0.1", self.lab.dovecot.port, self.user, self.lab.PASSWORD, self.mailbox.items,
                             self.burst, self.feed_seconds, self.clock)
        self.feed_started = self.clock()
        self.event(f"feeding {len(self.mailbox.items)} messages ({self.burst} at once, the rest over {self.feed_seconds:.0f} s)")
        self.feeder.start()

    def watch(self, seconds: float) -> None:
        """Sample the processes for ``seconds`` (memory, exits)."""
        end = time.monotonic() + seconds
        while True:
            self.sample()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.25, left))

    def sample(self) -> None:
        for proc in self.procs.values():
            proc.poll()
        self.redis.sample_rss()

    # -- faults --------------------------------------------------------------------------------------
    def kill_and_restart(self, role: str, down: float) -> None:
        proc = self.procs[role]
        if role == "adapter":
            self.event(f"adapter checkpoint before the kill: {self.checkpoint()}; highest UID appended so far: "
                       f"{max((i.uid or 0) for i in self.mailbox.items)}")
        if not proc.alive:
            self.event(f"{role} was not running when its kill was due (exit recorded); starting it")
        else:
            proc.kill()
            self.event(f"SIGKILL {role}")
        self.watch(down)
        proc.start()
        self.event(f"restarted {role} (test restart #{proc.incarnations - 1})")

    def checkpoint(self) -> str:
        try:
            values = self.redis_client.hgetall("helpdesk:checkpoints:imap")
        except redis.RedisError as exc:
            return f"unreadable ({exc})"
        return "; ".join(json.loads(v).__repr__() for v in values.values()) or "none"

    def adapter_health(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for key in self.redis_client.scan_iter(match="helpdesk:adapters:imap:*"):
            found.update({k.decode(): v.decode() for k, v in self.redis_client.hgetall(key).items()})
        return found

    def restart_redis(self, sig: int, down: float) -> None:
        name = signal.Signals(sig).name
        before = self.checkpoint()
        self.redis.stop(sig)
        self.event(f"redis-server stopped with {name}; adapter checkpoint just before: {before}")
        self.figures.redis_restarts.append(name)
        self.watch(down)
        self.redis.start()
        self.outages_ended[f"redis {name}"] = time.time()
        self.event(f"redis-server started again on port {self.redis.port}; checkpoint read back from the AOF: {self.checkpoint()}")

    def postgres_outage(self, seconds: float) -> None:
        started = time.monotonic()
        self.lab.pg.stop("fast")
        self.event("postgres stopped (pg_ctl stop -m fast)")
        self.watch(seconds)
        self.lab.pg.start()
        self.outages_ended["postgres"] = time.time()
        self.figures.postgres_outage_seconds = round(time.monotonic() - started, 1)
        self.event(f"postgres started again after {self.figures.postgres_outage_seconds} s")

    def wait_feed(self, timeout: float = 120) -> None:
        assert self.feeder is not None
        end = time.monotonic() + timeout
        while self.feeder.is_alive() and time.monotonic() < end:
            self.watch(0.5)
        if self.feeder.is_alive():
            self.feeder.stop_event.set()
            raise RuntimeError("the feeder did not finish APPENDing in time")
        if self.feeder.error is not None:
            raise RuntimeError(f"the feeder failed: {self.feeder.error!r}")
        self.figures.feed_seconds = round(self.feeder.done_at - self.feed_started, 1)
        self.event("feed done")

    # -- settling ------------------------------------------------------------------------------------
    def settle(self) -> Counts | None:
        """Poll the database and Redis until every message is accounted for and the queues are empty
        (three readings in a row), progress stalls for ``stall_seconds``, or ``settle_timeout`` passes."""
        sent = len(self.mailbox.items)
        started = time.monotonic()
        last_progress, last_key = started, None
        stable = 0
        counts: Counts | None = None
        while time.monotonic() - started < self.settle_timeout:
            self.sample()
            try:
                counts = read_counts(self.engine)
                queues = queue_unfinished(self.redis_client)
            except Exception:  # noqa: BLE001 - a server may still be coming back
                time.sleep(0.5)
                continue
            key = (counts.accounted, counts.messages, sum(queues.values()))
            if key != last_key:
                last_key, last_progress = key, time.monotonic()
            busy = sum(v for q, v in queues.items() if not q.endswith(".dead"))
            if counts.accounted >= sent and busy == 0:
                stable += 1
                if stable >= 3:
                    break
            else:
                stable = 0
            if time.monotonic() - last_progress > self.stall_seconds:
                self.event(f"no progress for {self.stall_seconds:.0f} s: accounted {counts.accounted}/{sent}, queues {queues}")
                return counts
            time.sleep(0.5)
        else:
            self.event(f"settle timeout after {self.settle_timeout:.0f} s")
            return counts
        self.figures.settled = True
        feed_end = self.feeder.done_at if self.feeder and self.feeder.done_at else self.clock()
        self.figures.settle_after_feed_seconds = round(self.clock() - feed_end, 1)
        self.figures.total_seconds = round(self.clock() - self.feed_started, 1)
        self.event(f"settled: accounted {counts.accounted}/{sent}")
        time.sleep(2)  # a late duplicate or redelivery would show now
        return read_counts(self.engine)

    # -- checks --------------------------------------------------------------------------------------
    def check(self, *, restarts_allowed: bool) -> list[str]:
        """Every exactness check; returns what failed (empty when all hold) and fills the figures."""
        failures: list[str] = []
        sent = len(self.mailbox.items)
        self.sample()
        if not self.figures.settled:
            failures.append("the pipeline did not settle (see the events and the counts)" + self._stuck_evidence())
        counts = read_counts(self.engine)
        self.figures.counts = asdict(counts) | {"accounted": counts.accounted}
        report = self.report()
        self.figures.report = {k: report.get(k) for k in ("tickets", "messages", "duplicates", "threaded", "automated", "quarantined")}
        # 1. the identity, through `helpdesk report --json`
        identity = sum(int(report.get(k) or 0) for k in ("tickets", "duplicates", "threaded", "automated", "quarantined"))
        if identity != sent:
            failures.append(f"report: tickets + duplicates + threaded + automated + quarantined = {identity} != {sent} sent "
                            f"({self.figures.report})")
        if counts.accounted != sent:
            failures.append(f"storage tables: accounted {counts.accounted} != {sent} sent ({asdict(counts)})")
        if report.get("messages") != counts.messages:
            failures.append(f"report messages {report.get('messages')} != stored inbound message rows {counts.messages}")
        # 2. per category, exactly
        expected_dups = self.mailbox.count("dup")
        if report.get("duplicates") != expected_dups:
            failures.append(f"duplicates counted {report.get('duplicates')} != {expected_dups} exact copies appended"
                            + self._duplicate_evidence())
        failures += self._per_message_checks()
        # 3. no ticket holds the same message twice
        failures += self._uniqueness_checks()
        # 4. nothing dead-lettered
        try:
            queues = queue_unfinished(self.redis_client)
            self.figures.dead_letters = sum(v for q, v in queues.items() if q.endswith(".dead"))
            self.figures.inflight_keys_left = sum(1 for _ in self.redis_client.scan_iter(match="helpdesk:inflight:*", count=1000))
        except redis.RedisError as exc:
            failures.append(f"redis unreadable at the end: {exc}")
        with self.engine.connect() as c:
            dead_rows = c.execute(text("SELECT count(*) FROM quarantine WHERE kind = 'dead_letter'")).scalar_one()
        if self.figures.dead_letters or dead_rows:
            failures.append(f"dead letters: {self.figures.dead_letters} in Redis, {dead_rows} mirrored to the quarantine table"
                            + self._quarantine_evidence())
        # 5. the processes recovered by themselves
        for role, proc in self.procs.items():
            self.figures.kills[role] = proc.kills
            self.figures.restarts_by_test[role] = proc.incarnations - 1
            self.figures.unexpected_exits[role] = proc.unexpected_exits
            self.figures.peak_rss_mb[role] = round(proc.peak_rss_kb / 1024, 1)
            if not proc.alive:
                failures.append(f"{role} is not running at the end (exit code {proc.process.poll()}): "
                                f"it did not recover by itself\n--- {role} log tail ---\n{proc.tail(25)}")
            if proc.unexpected_exits:
                failures.append(f"{role} exited without being killed: {proc.unexpected_exits}\n--- {role} log tail ---\n{proc.tail(25)}")
            if not restarts_allowed and proc.incarnations != 1:
                failures.append(f"{role} was started {proc.incarnations} times; this scenario must not restart anything")
        failures += self._liveness_checks()
        self._resumes()
        self.figures.redelivered = sum(len(p.grep(r"outcome=redelivered", 10**6)) for r, p in self.procs.items()
                                       if r.startswith("worker"))
        self.figures.failed_attempts = sum(len(p.grep(r"Failed to process message", 10**6)) for r, p in self.procs.items()
                                           if r.startswith("worker"))
        self.figures.peak_rss_mb["redis-server"] = round(self.redis.peak_rss_kb / 1024, 1)
        self.figures.failures = failures
        return failures

    def _resumes(self) -> None:
        """Seconds from each server's return to the next message stored (how fast the pipeline noticed)."""
        with self.engine.connect() as c:
            for fault, ended in self.outages_ended.items():
                first = c.execute(text("SELECT min(stored_at) FROM message WHERE stored_at > :t"),
                                  {"t": datetime.fromtimestamp(ended, timezone.utc)}).scalar_one()
                self.figures.resumed_after_seconds[fault] = round(first.timestamp() - ended, 1) if first else None

    def _liveness_checks(self) -> list[str]:
        """A process can be up and useless: the adapter must still sync, the workers still beat."""
        failures = []
        try:
            health = self.adapter_health()
            now = time.time()
            last = float(health.get("last_success", 0))
            self.figures.adapter_loop_restarts = int(health.get("restarts", 0) or 0)
            if now - last > 3 * self.poll_seconds + 5:
                failures.append(f"adapter process is up but has not synced for {now - last:.0f} s (it syncs at least every "
                                f"{self.poll_seconds} s): last error {health.get('last_error')!r} at "
                                f"{now - float(health.get('last_error_at', now)):.0f} s ago; checkpoint {self.checkpoint()}"
                                + self._adapter_traceback())
            failures += self._worker_liveness(now)
        except redis.RedisError as exc:
            failures.append(f"redis unreadable for the liveness checks: {exc}")
        return failures

    def _worker_liveness(self, now: float) -> list[str]:
        """Each running worker process keeps a ``helpdesk:workers:<broker id>`` record (with its pid) and its broker
        id's dramatiq heartbeat fresh. (``__heartbeats__`` alone cannot tell: the adapter's broker beats there too.)"""
        records: dict[int, str] = {}
        for key in self.redis_client.scan_iter(match="helpdesk:workers:*"):
            raw = self.redis_client.get(key)
            try:
                records[int(json.loads(raw)["pid"])] = key.decode().rsplit(":", 1)[1]
            except (TypeError, ValueError, KeyError):
                continue
        failures = []
        for role, proc in self.procs.items():
            if not role.startswith("worker") or not proc.alive:
                continue
            worker_id = records.get(proc.process.pid)
            if worker_id is None:
                failures.append(f"{role} (pid {proc.process.pid}) runs but keeps no worker record in Redis: it is not consuming")
                continue
            beat = self.redis_client.zscore("helpdesk:__heartbeats__", worker_id)
            if beat is None or now * 1000 - beat > 3 * 5000:  # three heartbeat timeouts: a loaded machine delays beats
                age = "none" if beat is None else f"{now - beat / 1000:.0f} s old"
                failures.append(f"{role} (pid {proc.process.pid}) runs but its dramatiq heartbeat is {age}: it is not consuming")
        return failures

    def _adapter_traceback(self) -> str:
        log = self.procs["adapter"].log.read_text(errors="replace") if self.procs["adapter"].log.exists() else ""
        at = log.find("Exception in thread")
        return f"\n--- adapter log from the uncaught exception ---\n{log[at:at + 4000]}" if at >= 0 else ""

    def report(self) -> dict[str, Any]:
        result = subprocess.run([*helpdesk_command(), "report", "--json"], env=self.env, cwd=ROOT, capture_output=True, text=True,
                                timeout=120)
        if result.returncode != 0:
            return {"error": f"helpdesk report exited {result.returncode}: {result.stderr[-1500:]}"}
        try:
            return json.loads(result.stdout)
        except ValueError:
            return {"error": f"helpdesk report printed no JSON: {result.stdout[:500]}"}

    def _rows(self) -> dict[str, list[dict[str, Any]]]:
        by_id: dict[str, list[dict[str, Any]]] = {}
        with self.engine.connect() as c:
            for row in c.execute(text("SELECT id, ticket_id, kind, message_id, external_id, source, delivery_id FROM message "
                                      "WHERE direction = 'in'")).mappings():
                by_id.setdefault(row["message_id"] or row["external_id"], []).append(dict(row))
        return by_id

    def _per_message_checks(self) -> list[str]:
        rows = self._rows()
        with self.engine.connect() as c:
            quarantined_sources = [s for (s,) in c.execute(text("SELECT source FROM quarantine"))]
        problems: Counter = Counter()
        examples: dict[str, list[str]] = {}
        ticket_of_enquiry: dict[str, int] = {}

        def problem(kind: str, detail: str) -> None:
            problems[kind] += 1
            examples.setdefault(kind, [])
            if len(examples[kind]) < 5:
                examples[kind].append(detail)

        for item in self.mailbox.items:
            found = rows.get(item.message_id or "", [])
            if item.kind == "dup":
                continue
            if item.kind == "real":
                in_quarantine = item.uid is not None and any(s.endswith(f";uid={item.uid}") for s in quarantined_sources)
                if len(found) + int(in_quarantine) != 1:
                    problem("real mail not stored exactly once", f"{item.origin} <{item.message_id}>: {len(found)} rows, "
                            f"quarantined={in_quarantine}")
                continue
            if len(found) != 1:
                problem(f"{item.kind} not stored exactly once", f"<{item.message_id}> (uid {item.uid}): {len(found)} rows")
                continue
            row = found[0]
            if item.kind == "new":
                if row["kind"] != "enquiry" or row["ticket_id"] is None:
                    problem("new enquiry did not open a ticket", f"<{item.message_id}>: kind={row['kind']} ticket={row['ticket_id']}")
                ticket_of_enquiry[item.message_id] = row["ticket_id"]
        for item in self.mailbox.items:
            found = rows.get(item.message_id or "", [])
            if item.kind == "reply" and len(found) == 1:
                row, parent_ticket = found[0], ticket_of_enquiry.get(item.parent or "")
                if row["kind"] != "reply" or row["ticket_id"] != parent_ticket:
                    problem("reply not threaded onto its parent's ticket",
                            f"<{item.message_id}>: kind={row['kind']} ticket={row['ticket_id']}, parent's ticket {parent_ticket}")
            if item.kind == "auto" and len(found) == 1 and found[0]["kind"] != "automated":
                problem("automated mail not recognised", f"<{item.message_id}> ({item.origin}): kind={found[0]['kind']}")
        distinct_tickets = len(set(ticket_of_enquiry.values()))
        if distinct_tickets != len(ticket_of_enquiry):
            problem("two enquiries share a ticket", f"{len(ticket_of_enquiry)} enquiries on {distinct_tickets} tickets")
        return [f"{kind}: {n} (e.g. {'; '.join(examples[kind])})" for kind, n in problems.items()]

    def _uniqueness_checks(self) -> list[str]:
        failures = []
        with self.engine.connect() as c:
            same_key = c.execute(text("SELECT channel, external_id, count(*) FROM message GROUP BY channel, external_id "
                                      "HAVING count(*) > 1 LIMIT 5")).all()
            same_on_ticket = c.execute(text("SELECT ticket_id, message_id, count(*) FROM message WHERE message_id IS NOT NULL "
                                            "GROUP BY ticket_id, message_id HAVING count(*) > 1 LIMIT 5")).all()
            same_mid = c.execute(text("SELECT message_id, count(*) FROM message WHERE direction = 'in' AND message_id IS NOT NULL "
                                      "GROUP BY message_id HAVING count(*) > 1 LIMIT 5")).all()
        if same_key:
            failures.append(f"message rows sharing (channel, external_id): {same_key}")
        if same_on_ticket:
            failures.append(f"a ticket holds the same Message-ID twice: {same_on_ticket}")
        if same_mid:
            failures.append(f"one Message-ID stored as several messages (a repeat stored as a variant?): {same_mid}")
        expected_ids = len({i.message_id for i in self.mailbox.items})
        counts = read_counts(self.engine)
        quarantined_real = counts.quarantined
        if not (expected_ids - quarantined_real <= counts.distinct_message_ids <= expected_ids):
            failures.append(f"distinct Message-IDs stored {counts.distinct_message_ids}, sent {expected_ids} "
                            f"({quarantined_real} quarantined)")
        return failures

    def _stuck_evidence(self) -> str:
        """Where the unfinished messages are: ready lists, delayed, and whose ack sets hold them (alive or not)."""
        try:
            c = self.redis_client
            owners: dict[str, str] = {}
            for key in c.scan_iter(match="helpdesk:workers:*"):
                try:
                    owners[key.decode().rsplit(":", 1)[1]] = f"pid {json.loads(c.get(key))['pid']}"
                except (TypeError, ValueError, KeyError):
                    pass
            pids = {str(p.process.pid): r for r, p in self.procs.items() if p.process is not None}
            lines = []
            now_ms = time.time() * 1000
            for q in QUEUES:
                pending = c.hgetall(f"helpdesk:{q}.msgs")
                delayed = c.hgetall(f"helpdesk:{q}.DQ.msgs")
                if not pending and not delayed:
                    continue
                ready = {m.decode() for m in c.lrange(f"helpdesk:{q}", 0, -1)}
                lines.append(f"\n  queue {q}: {len(pending)} unacked ({len(ready)} ready), {len(delayed)} delayed")
                for mid, raw in list(pending.items())[:5] + list(delayed.items())[:5]:
                    mid_s = mid.decode()
                    try:
                        body = json.loads(raw)
                        what = f"{body.get('actor_name')}{tuple(str(a)[:60] for a in body.get('args', ()))}"
                    except ValueError:
                        what = "?"
                    holders = []
                    for ack in c.scan_iter(match=f"helpdesk:__acks__.*.{q}*"):
                        if c.sismember(ack, mid_s):  # dramatiq's ack sets: __acks__.<broker id>.<queue>
                            broker = ack.decode().split("__acks__.", 1)[1].rsplit(f".{q}", 1)[0]
                            beat = c.zscore("helpdesk:__heartbeats__", broker)
                            owner = owners.get(broker, "no worker record")
                            role = pids.get(owner.split()[-1], "") if owner.startswith("pid") else ""
                            age = "no heartbeat" if beat is None else f"heartbeat {(now_ms - beat) / 1000:.0f} s old"
                            holders.append(f"held by broker {broker[:8]} ({owner} {role}, {age})")
                    where = "ready" if mid_s in ready else ("; ".join(holders) or "in no ack set and not ready")
                    lines.append(f"\n    {mid_s[:8]} {what}: {where}")
            return "".join(lines)
        except redis.RedisError as exc:
            return f"\n  (redis unreadable: {exc})"

    def _duplicate_evidence(self) -> str:
        with self.engine.connect() as c:
            rows = c.execute(text(
                "SELECT m.message_id, m.source, e.key, e.at FROM metric_event e JOIN message m ON m.id = (e.data->>'message')::int "
                "WHERE e.kind = 'duplicate' ORDER BY e.at")).all()
        copies = Counter(i.message_id for i in self.mailbox.items)
        extra = [r for r in rows if copies[r.message_id] < 2]
        over = Counter(r.message_id for r in rows)
        overcounted = [(mid, n, copies[mid] - 1) for mid, n in over.items() if n > copies[mid] - 1]
        lines = [f"\n  duplicate events for Message-IDs appended only once: {len(extra)} (e.g. {[(r.message_id, r.source) for r in extra[:3]]})",
                 f"\n  Message-IDs with more duplicate events than extra copies (id, events, copies-1): {overcounted[:8]}"]
        for mid, _n, _c in overcounted[:3]:
            appended = [(i.kind, i.uid, round(i.appended_at or 0, 2)) for i in self.mailbox.items if i.message_id == mid]
            lines.append(f"\n  <{mid}>: appended as (kind, uid, t) {appended}; stored row source "
                         f"{[r.source for r in rows if r.message_id == mid][:1]}; worker log lines:")
            for proc in self.procs.values():
                lines += [f"\n    {proc.role}: {line.strip()[:400]}" for line in proc.grep(re.escape(f"external_id={mid} "), 6)]
        return "".join(lines)

    def _quarantine_evidence(self) -> str:
        with self.engine.connect() as c:
            rows = c.execute(text("SELECT kind, reason, queue, left(detail, 300) FROM quarantine ORDER BY id LIMIT 5")).all()
        return f"\n  e.g. {rows}"

    # -- teardown ------------------------------------------------------------------------------------
    def evidence(self) -> str:
        """Log excerpts for a failure report: errors and the tail of every process, the events."""
        parts = ["--- events ---", *self.figures.events]
        for role, proc in self.procs.items():
            errors = proc.grep(r"(?i)traceback|error|exception|critical|warning", 12)
            parts += [f"--- {role}: first warning/error lines ({proc.log}) ---", *errors, f"--- {role}: tail ---", proc.tail(15)]
        return "\n".join(parts)

    def close(self) -> None:
        if self.feeder is not None:
            self.feeder.stop_event.set()
            self.feeder.join(timeout=35)
        for proc in self.procs.values():
            try:
                proc.stop()
            except Exception:  # noqa: BLE001 - stop the others regardless
                pass
        if self.redis_client is not None:
            self.redis_client.close()
        self.redis.close()
        self.engine.dispose()
        if not self.lab.pg.running:  # a failure in the middle of the outage scenario
            try:
                self.lab.pg.start()
            except Exception:  # noqa: BLE001
                pass


# -- the scenarios (shared by tests/faults/test_faults.py and bench/faults.py) -----------------------

def sigkill_faults(run: Run, seed: int | None = None) -> None:
    """Seven SIGKILLs at random moments of the feed (each worker, the adapter, both workers at once, three
    more at random), each victim started again after a random pause of 0.3–2 s. The seed (default 2026,
    or ``HDFAULTS_KILL_SEED``) fixes victims, moments and pauses."""
    rng = random.Random(seed if seed is not None else int(os.environ.get("HDFAULTS_KILL_SEED", "2026")))
    victims = ["worker-0", "worker-1", "adapter", "workers", *rng.choices(["worker-0", "worker-1", "adapter"], k=3)]
    rng.shuffle(victims)
    moments = sorted(rng.uniform(2.0, run.feed_seconds + 4) for _ in victims)
    for moment, victim in zip(moments, victims):
        run.watch(max(0.0, run.feed_started + moment - run.clock()))
        for role in (["worker-0", "worker-1"] if victim == "workers" else [victim]):
            run.kill_and_restart(role, down=rng.uniform(0.3, 2.0))


def redis_faults(run: Run) -> None:
    """Redis stopped with SIGTERM for 3 s at 8 s into the feed, and killed with SIGKILL for 3 s eight seconds
    after it came back; the same port and dir (the AOF) each time. Nothing else is restarted."""
    run.watch(8.0)
    run.restart_redis(signal.SIGTERM, down=3.0)
    run.watch(8.0)
    run.restart_redis(signal.SIGKILL, down=3.0)


def postgres_faults(run: Run) -> None:
    """PostgreSQL stopped (pg_ctl stop -m fast) 6 s into the feed, started again 20 s later. Nothing else is restarted."""
    run.watch(6.0)
    run.postgres_outage(20.0)


SCENARIOS: dict[str, tuple[Callable[[Run], None], bool]] = {
    # name: (faults, whether the run itself restarts processes)
    "sigkill": (sigkill_faults, True),
    "redis": (redis_faults, False),
    "postgres": (postgres_faults, False),
}


def run_scenario(run: Run, name: str) -> list[str]:
    """Start, feed while the scenario's faults land, settle, check: the failures (empty when all held)."""
    faults, restarts_allowed = SCENARIOS[name]
    run.start()
    run.feed()
    faults(run)
    run.wait_feed()
    run.settle()
    return run.check(restarts_allowed=restarts_allowed)


def print_figures(figures: list[Figures], out: Any = None) -> None:
    """The figures of each scenario as one table (for the README)."""
    out = out or sys.stdout
    columns = ["scenario", "sent", "tickets", "dups", "threaded", "auto", "quar.", "feed s", "settle s", "kills", "redis",
               "pg down s", "resumed s", "re-delivered", "failed attempts", "peak RSS MB adapter/workers/redis", "result"]
    rows = []
    for f in figures:
        report = f.report or {}
        rss = f.peak_rss_mb
        workers = "/".join(f"{v:.0f}" for k, v in sorted(rss.items()) if k.startswith("worker"))
        kills = ", ".join(f"{k} {v}" for k, v in f.kills.items() if v) or "0"
        rows.append([f.scenario, f.messages_sent, report.get("tickets"), report.get("duplicates"), report.get("threaded"),
                     report.get("automated"), report.get("quarantined"), f.feed_seconds, f.settle_after_feed_seconds, kills,
                     "+".join(f.redis_restarts) or "-", f.postgres_outage_seconds or "-",
                     "/".join(str(v) for v in f.resumed_after_seconds.values()) or "-", f.redelivered, f.failed_attempts,
                     f"{rss.get('adapter', 0):.0f}/{workers}/{rss.get('redis-server', 0):.0f}",
                     "ok" if not f.failures else f"{len(f.failures)} failed"])
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    print(" | ".join(str(c).ljust(w) for c, w in zip(columns, widths)), file=out)
    print("-+-".join("-" * w for w in widths), file=out)
    for r in rows:
        print(" | ".join(str(v).ljust(w) for v, w in zip(r, widths)), file=out)
