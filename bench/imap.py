"""Benchmark: IMAP intake against a private Dovecot, to stored tickets — the figures of issue #18, each beside its target.

    python bench/imap.py [--backfill 3000] [--mailbox 1000] [--latency 200] [--database-url URL] [--skip-peer]

1. Steady backfill: N distinct enquiries written straight into Dovecot's Maildir are read by the adapter
   (one connection, batches of 100) while a worker process, started and loaded before the clock starts,
   stores them; messages/s from the adapter's start until the last one is stored. Target ≥ 300 msg/s.
2. Mixed mailbox: 1,000 messages — 830 new enquiries, 100 replies, 50 exact duplicates and 20 real
   auto-replies and bounces read at run time from the shared corpus (sisimai's bsd/ set) — read by
   `helpdesk intake imap` and one `helpdesk worker`, both started together as processes when the clock
   starts, until every message is accounted for (ticket, reply, duplicate, automated or quarantined). Before the
   clock the desk is as a deployed one: its database migrated, the teams' public holidays in its data folder.
   Compared with django-helpdesk 2.6.1's `get_email` on a copy of the same mailbox, measured in the same run
   in a virtualenv of its own (installed with pip from the configured package index, if it can be); when
   it cannot be installed the output says so and uses the figure recorded in the issue (26.7 msg/s),
   labelled as recorded. Target ≥ 10× the peer.
3. IDLE latency: with that adapter in IDLE and a worker configured against the local fake Slack
   (tests/servers/slack.py), M messages are APPENDed one at a time; for each, the time from the APPEND's
   completion to the ticket being stored, and to its Slack card being posted. Targets p95 < 300 ms and
   < 500 ms. Split: APPEND → EXISTS seen by an independent IDLE connection (Dovecot's own notification
   delay, a fixed 500 ms), EXISTS → adapter received, received → stored. Then the same with the doorbell: Dovecot
   runs ops/dovecot/helpdesk-doorbell.lua (its push-notification plugin; needs Debian's lua-socket) and a new
   adapter started with HELPDESK_IMAP_DOORBELL leaves IDLE when it rings, not when IDLE reports the mail.

Our processes start with the project's bytecode compiled, as an installed desk has it: pip compiles a package
on install, as it did django-helpdesk's and every library's here. An editable checkout under
``PYTHONDONTWRITEBYTECODE`` (the development containers set it) would otherwise compile the project's modules
again in every process it starts, about 0.2 s of CPU each; so before any clock starts the benchmark compiles them
(``python -m compileall``, into the checkout's ``__pycache__`` folders, which git ignores).

Each figure is printed with the load average of the machine when it was taken (other benchmarks may run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis
import yaml
from imapclient import IMAPClient
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.desk import load_desk  # noqa: E402
from config.settings import load_settings  # noqa: E402
from intake.imap import FolderWatcher, ImapAccount, WatchOptions  # noqa: E402
from intake.state import AdapterHealth, RedisCheckpointStore  # noqa: E402
from ops.logs import configure_logging  # noqa: E402
from ops.runtime import Runtime  # noqa: E402
from storage.db import reading  # noqa: E402
from storage.intake_store import MESSAGE  # noqa: E402
from tests.dovecot import LUA_SOCKET, Dovecot  # noqa: E402
from tests.factories import make_email  # noqa: E402
from tests.faults.harness import CORPUS, build_mailbox, helpdesk_command, read_counts  # noqa: E402
from tests.servers.base import free_port  # noqa: E402
from tests.servers.slack import TOKEN, SlackServer  # noqa: E402
from tests.test_end_to_end import SENDERS, SUBJECTS  # noqa: E402
from workers.intake.training import ModelStore, load_or_train  # noqa: E402
from workers.ops.preload import keep_public_holidays  # noqa: E402

PASSWORD = "bench-password"
PEER = "django-helpdesk==2.6.1"
PEER_RECORDED = 26.7  # msg/s, issue #18: get_email on the same mailbox, on the same kind of machine
ROBOTS = "sisimai-set-of-emails/bsd/"  # where the mixed mailbox's auto-replies and bounces must come from


@dataclass
class Figure:
    measure: str
    value: str
    target: str
    load: str
    met: bool | None = None


@dataclass
class Bench:
    args: argparse.Namespace
    root: Path
    work: Path
    dovecot: Dovecot
    model_dir: Path
    figures: list[Figure] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)

    def add(self, measure: str, value: str, target: str = "", met: bool | None = None) -> None:
        self.figures.append(Figure(measure, value, target, load_average(), met))

    def settings(self, name: str):  # noqa: ANN201 - config.settings.Settings
        namespace = f"bench-imap-{name}-{uuid.uuid4().hex[:8]}"
        self.namespaces.append(namespace)
        database_url = self.args.database_url or f"sqlite:///{self.work / name / 'bench.db'}"
        return load_settings(environ={}, data_dir=self.work / name / "data", model_dir=self.model_dir, redis_url=self.args.redis_url,
                             redis_namespace=namespace, database_url=database_url, log_level="ERROR")

    @staticmethod
    def compile_project() -> None:
        """The project's modules compiled beside their sources, as pip compiles an installed package (see the module's note)."""
        packages = [name for name in ("config", "intake", "workers", "classifiers", "storage", "ops") if (ROOT / name).is_dir()]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", *packages], env=env, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)

    def helpdesk(self, settings, *args: str, **extra: str) -> subprocess.Popen:  # noqa: ANN001
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
        env.update({"HELPDESK_DATA_DIR": str(settings.data_dir), "HELPDESK_MODEL_DIR": str(self.model_dir),
                    "HELPDESK_REDIS_URL": self.args.redis_url, "HELPDESK_REDIS_NAMESPACE": settings.redis_namespace,
                    "HELPDESK_DATABASE_URL": settings.database_url, "HELPDESK_LOG_LEVEL": "ERROR", **extra})
        process = subprocess.Popen([*helpdesk_command(), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def imap_env(self, user: str) -> dict[str, str]:
        return {"HELPDESK_IMAP_HOST": "127.0.0.1", "HELPDESK_IMAP_PORT": str(self.dovecot.port), "HELPDESK_IMAP_USER": user,
                "HELPDESK_IMAP_PASSWORD": PASSWORD, "HELPDESK_IMAP_SSL": "false", "HELPDESK_IMAP_POLL_SECONDS": "300"}

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class CpuWatch:
    """CPU seconds (user + system) of every process descended from the given ones, by role, sampled from /proc.

    It walks down from the given processes through the kernel's lists of each thread's children, so that a sample
    reads a few small files (≈ 0.2 ms), not all of /proc: the watch must not take the cores it measures. A process's
    last reading before it exits is what counts (sampled every 50 ms: a process living less than that may be missed,
    and each loses up to 50 ms of its end). Linux only: elsewhere it records nothing."""

    ROLES = (("parse_pool import helper_main", "parse helpers"), ("parse_pool import zygote_main", "parse zygote"),
             (" intake imap", "adapter"), (" worker", "worker"))

    def __init__(self, *roots: int) -> None:
        self.roots, self.seen = roots, {}  # pid → (role, CPU seconds)
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(0.05):
            self.sample()

    def sample(self) -> None:
        pending = list(self.roots)
        while pending:
            pid = pending.pop()
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                tasks = os.listdir(f"/proc/{pid}/task")
                children = [int(child) for task in tasks for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            except (OSError, IndexError):
                continue  # gone, or not Linux
            known = self.seen.get(pid)
            role = known[0] if known else self._role(pid, int(fields[1]))
            self.seen[pid] = (role, max((int(fields[11]) + int(fields[12])) / self.tick, known[1] if known else 0.0))
            pending.extend(children)

    @classmethod
    def _role(cls, pid: int, parent: int) -> str:
        role = cls._command_role(pid)
        if role == "parse zygote" and cls._command_role(parent) == "parse zygote":
            return "parse helpers"  # forked by the zygote: its command line
        return role

    @classmethod
    def _command_role(cls, pid: int) -> str:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return "other"
        return next((role for needle, role in cls.ROLES if needle in command), "other")

    def stop(self) -> dict[str, tuple[int, float]]:
        """Per role: how many processes, and their CPU seconds."""
        self.done.set()
        self.thread.join()
        self.sample()
        roles: dict[str, tuple[int, float]] = {}
        for role, seconds in self.seen.values():
            count, total = roles.get(role, (0, 0.0))
            roles[role] = (count + 1, total + seconds)
        return roles


def load_average() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def write_maildir(dovecot: Dovecot, user: str, mails: list[bytes]) -> None:
    """Mails straight into the user's Maildir/new, in order (Dovecot assigns UIDs in that order when it first looks)."""
    dovecot.add_user(user, PASSWORD)
    new = dovecot.root / "home" / user / "Maildir" / "new"
    for sub in ("new", "cur", "tmp"):
        (new.parent / sub).mkdir(parents=True, exist_ok=True)
    for i, raw in enumerate(mails):
        (new / f"{1790000000 + i}.{i:06d}_bench.host").write_bytes(raw)
    for path in (new.parent.parent, *new.parent.parent.rglob("*")):
        shutil.chown(path, 65534, 65534)


def enquiries(n: int) -> list[bytes]:
    return [make_email(sender=SENDERS[i % 6], subject=f"{SUBJECTS[i % 4]} #{i}", message_id=f"<b{i}@bench>",
                       body=(f"Hello, enquiry {i}: our data review shows validation errors for tender/value and buyer.id. "
                             "How should we map the fields of our system? Regards, Ana"))
            for i in range(n)]


def stored(engine) -> int:  # noqa: ANN001
    # a reading connection: on SQLite a plain BEGIN, which does not take the writer's turn from the worker it watches
    with reading(engine) as c:
        return c.execute(select(func.count()).select_from(MESSAGE)).scalar_one()


def wait_until(condition, timeout: float, what: str, interval: float = 0.1) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


# -- 1. steady backfill ------------------------------------------------------------------------------------

def backfill(bench: Bench) -> None:
    n = bench.args.backfill
    settings = bench.settings("backfill")
    write_maildir(bench.dovecot, "backfill", enquiries(n))
    with Runtime(settings) as runtime:
        runtime.engine  # noqa: B018 - migrate before timing
        worker = bench.helpdesk(settings, "worker")
        time.sleep(3)  # the worker loads its model before the clock starts
        account = ImapAccount("127.0.0.1", bench.dovecot.port, "backfill", PASSWORD, False, None, ("INBOX",), None, 30.0)
        stop = threading.Event()
        client, ns = runtime.broker.client, settings.redis_namespace
        watcher = FolderWatcher(account, "INBOX", runtime.ingestor, RedisCheckpointStore(client, ns), AdapterHealth(client, ns),
                                WatchOptions(batch_size=100, poll_seconds=300), stop)
        started = time.perf_counter()
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        wait_until(lambda: stored(runtime.engine) >= n, 600, "backfill", 0.05)
        seconds = time.perf_counter() - started
        stop.set()
        thread.join(timeout=30)
        bench.stop(worker)
    rate = n / seconds
    bench.add(f"steady backfill, {n:,} messages (adapter in-process + 1 worker)", f"{rate:,.0f} msg/s ({seconds:.1f} s)", "≥ 300 msg/s", rate >= 300)


# -- 2. the mixed mailbox, and the peer on the same mailbox ----------------------------------------------------

def mixed_mailbox(bench: Bench, total: int):  # noqa: ANN201 - tests.faults.harness.Mailbox
    mailbox = build_mailbox(seed=bench.args.seed, total=total, replies=total // 10, dups=total // 20, autos=0,
                            real_bounces=total // 50, real_others=0)
    robots = [item.origin for item in mailbox.items if item.kind == "real"]
    if len(robots) != total // 50:
        raise SystemExit(f"the mixed mailbox needs {total // 50} real auto-replies and bounces from {CORPUS / ROBOTS}; found {len(robots)}")
    if not all(origin.startswith(ROBOTS) for origin in robots):
        raise SystemExit(f"the mailbox's robots must come from {CORPUS / ROBOTS}; got {robots}")
    return mailbox


def mixed(bench: Bench):  # noqa: ANN201 - (its settings, the adapter process still running)
    mailbox = mixed_mailbox(bench, bench.args.mailbox)
    composition = mailbox.composition()
    settings = bench.settings("mixed")
    write_maildir(bench.dovecot, "mixed", [item.raw for item in mailbox.items])
    with Runtime(settings) as runtime:
        engine = runtime.engine  # migrated before the clock starts, as a deployed desk's database is
        keep_public_holidays(settings, load_desk(settings))  # in its data folder, as a deployed desk's earlier workers left them
        checkpoints = RedisCheckpointStore(runtime.broker.client, settings.redis_namespace)
        account = "mixed@127.0.0.1"
        started = time.perf_counter()
        adapter = bench.helpdesk(settings, "intake", "imap", **bench.imap_env("mixed"))
        worker = bench.helpdesk(settings, "worker")
        watch = CpuWatch(adapter.pid, worker.pid)
        first_stored = first_queued = all_queued = None
        deadline = started + 900
        while (counts := read_counts(engine)).accounted < len(mailbox.items):
            now = time.perf_counter()
            if now > deadline:
                raise TimeoutError("mixed mailbox: not accounted for within 900 s")
            if first_stored is None and counts.accounted:
                first_stored = now - started
            checkpoint = checkpoints.get("imap", account, "INBOX") if all_queued is None else None
            if checkpoint is not None and first_queued is None:
                first_queued = now - started
            if checkpoint is not None and checkpoint.last_uid >= len(mailbox.items):
                all_queued = now - started
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        first_stored = seconds if first_stored is None else first_stored  # all of it between two looks
        cpu = watch.stop()
        bench.stop(worker)
    rate = len(mailbox.items) / seconds
    what = (f"{composition['new']} new, {composition['reply']} replies, {composition['dup']} duplicates, "
            f"{composition['real']} real auto-replies/bounces")
    bench.add(f"mixed mailbox of {len(mailbox.items):,} ({what}): `helpdesk intake imap` + 1 `helpdesk worker` started together",
              f"{rate:,.1f} msg/s ({seconds:.1f} s)", "")
    if first_stored is not None:
        bench.add("  split: start of both processes → first message stored (start-up of the worker and the adapter)",
                  f"{first_stored:.1f} s", "")
        bench.add("  split: first stored → all accounted for", f"{seconds - first_stored:.1f} s = "
                  f"{len(mailbox.items) / max(seconds - first_stored, 1e-9):,.0f} msg/s", "")
    if first_queued is not None and all_queued is not None:
        bench.add("  split: start → the adapter's first batch queued / every message queued (its checkpoint)",
                  f"{first_queued:.1f} s / {all_queued:.1f} s", "")
    if cpu:
        bench.add("  split: CPU seconds by process until all accounted for (processes)",
                  ", ".join(f"{role} {seconds:.2f} ({count})" for role, (count, seconds) in sorted(cpu.items()))
                  + f"; in all {sum(seconds for _, seconds in cpu.values()):.2f}", "")
    bench.add("  … accounted for", f"{counts.tickets} tickets, {counts.threaded} replies, {counts.duplicates} duplicates, "
              f"{counts.automated} automated, {counts.quarantined} quarantined", "")
    peer_rate, peer_label = peer(bench, mailbox)
    ratio = rate / peer_rate
    bench.add(f"  ÷ django-helpdesk 2.6.1 get_email on the same mailbox ({peer_label})", f"{ratio:.1f}× ({rate:,.1f} ÷ {peer_rate:.1f} msg/s)",
              "≥ 10×", ratio >= 10)
    return settings, adapter


PEER_SCRIPT = '''
import importlib.metadata, json, os, sys, tempfile, time
folder = sys.argv[5]
sys.path.insert(0, folder)
os.environ["DJANGO_SETTINGS_MODULE"] = "peer_settings"
with open(os.path.join(folder, "peer_settings.py"), "w") as f:
    f.write(f"""
SECRET_KEY = "bench"
USE_TZ = True
SITE_ID = 1
INSTALLED_APPS = ["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
                  "django.contrib.messages", "django.contrib.staticfiles", "django.contrib.sites", "django.contrib.humanize",
                  "rest_framework", "account", "pinax.invitations", "pinax.teams", "reversion", "helpdesk"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {os.path.join(folder, 'peer.db')!r}}}}}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
MEDIA_ROOT = {os.path.join(folder, 'media')!r}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
TEMPLATES = [{{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True, "OPTIONS": {{}}}}]
ROOT_URLCONF = "peer_urls"
LOGGING = {{"version": 1, "disable_existing_loggers": False, "root": {{"handlers": [], "level": "CRITICAL"}}}}
""")
with open(os.path.join(folder, "peer_urls.py"), "w") as f:
    f.write("from django.urls import include, path\\nurlpatterns = [path('helpdesk/', include('helpdesk.urls', namespace='helpdesk'))]\\n")
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from helpdesk.email import process_email
from helpdesk.models import FollowUp, Queue, Ticket
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
Queue.objects.create(title="Helpdesk", slug="helpdesk", email_address="helpdesk@osds.example", allow_email_submission=True,
                     email_box_type="imap", email_box_host=host, email_box_port=port, email_box_ssl=False, email_box_user=user,
                     email_box_pass=password, email_box_imap_folder="INBOX", email_box_interval=0, logging_type="none")
started = time.perf_counter()
process_email(quiet=True)  # what `manage.py get_email` runs
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "tickets": Ticket.objects.count(), "followups": FollowUp.objects.count(),
                  "version": importlib.metadata.version("django-helpdesk")}))
'''


def peer_python(bench: Bench) -> tuple[Path | None, str]:
    """A Python with django-helpdesk 2.6.1 (a virtualenv of its own, made with pip from the configured index), or why not."""
    venv = bench.args.peer_venv
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import importlib.metadata as m; assert m.version('django-helpdesk') == '2.6.1'; import pinax.teams"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python, ""
    made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], capture_output=True, text=True)
    if made.returncode != 0:
        return None, f"python -m venv failed: {made.stderr.strip()[-300:]}"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", f"django-helpdesk[teams]{PEER[len('django-helpdesk'):]}"],
                         capture_output=True, text=True, timeout=900)
    if pip.returncode != 0:
        return None, f"pip install {PEER} failed: {pip.stderr.strip()[-300:]}"
    return python, ""


def peer(bench: Bench, mailbox) -> tuple[float, str]:  # noqa: ANN001
    """django-helpdesk's get_email on a copy of the mailbox: (msg/s, how it was obtained)."""
    if bench.args.skip_peer:
        return PEER_RECORDED, "RECORDED in issue #18, not measured (--skip-peer)"
    python, why = peer_python(bench)
    if python is None:
        print(f"django-helpdesk could not be installed, so it was not measured: {why}")
        return PEER_RECORDED, f"RECORDED in issue #18, not measured: {why[:80]}"
    write_maildir(bench.dovecot, "peer", [item.raw for item in mailbox.items])
    folder = bench.work / "peer"
    folder.mkdir()
    load = load_average()
    run = subprocess.run([str(python), "-c", PEER_SCRIPT, "127.0.0.1", str(bench.dovecot.port), "peer", PASSWORD, str(folder)],
                         capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        why = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit status {run.returncode}"
        print(f"django-helpdesk's get_email failed, so it was not measured: {run.stderr[-2000:]}")
        return PEER_RECORDED, f"RECORDED in issue #18, not measured: {why[:80]}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    rate = len(mailbox.items) / result["seconds"]
    bench.add(f"django-helpdesk {result['version']} get_email, same mailbox, SQLite ({result['tickets']} tickets, "
              f"{result['followups']} follow-ups)", f"{rate:.1f} msg/s ({result['seconds']:.1f} s)", "")
    bench.figures[-1].load = load
    return rate, f"measured in this run, load {load}"


# -- 3. IDLE latency to the ticket and to the Slack card --------------------------------------------------------

class ExistsWatcher:
    """An independent IDLE connection on the same folder: when Dovecot told a client about new mail."""

    def __init__(self, port: int, user: str) -> None:
        self.client = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=30)
        self.client.login(user, PASSWORD)
        self.client.select_folder("INBOX", readonly=True)
        self.seen: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.client.idle()
        while not self.stop.is_set():
            for response in self.client.idle_check(timeout=0.2):
                if isinstance(response, tuple) and len(response) >= 2 and response[1] == b"EXISTS":
                    self.seen.append(time.time())
        self.client.idle_done()

    def after(self, moment: float) -> float | None:
        return next((t for t in self.seen if t >= moment), None)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        try:
            self.client.logout()
        except Exception:  # noqa: BLE001
            pass


def always_on_teams(settings, folder: Path) -> Path:  # noqa: ANN001
    """The desk's teams, with every member on shift around the clock and room for every ticket: each probe is
    assigned at once, so its card is posted (off shift a ticket waits in the backlog, uncarded)."""
    teams = yaml.safe_load(settings.teams_file.read_text())
    for team in teams["teams"].values():
        for member in team.get("members", []):
            member.update(working_hours="00:00-24:00", working_days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], capacity=100_000)
            member.pop("on_leave_until", None)
    path = folder / "teams-always-on.yaml"
    path.write_text(yaml.safe_dump(teams, allow_unicode=True))
    return path


def latency(bench: Bench, settings, adapter: subprocess.Popen) -> None:  # noqa: ANN001
    """The IDLE series with the mixed run's adapter, then the doorbell series with an adapter that listens for it."""
    engine = create_engine(settings.database_url)
    with SlackServer() as slack:
        worker = bench.helpdesk(settings, "worker", HELPDESK_SLACK_BOT_TOKEN=TOKEN, HELPDESK_SLACK_API_URL=slack.api_url,
                                HELPDESK_TEAMS_FILE=str(always_on_teams(settings, bench.work)))
        warm = IMAPClient("127.0.0.1", port=bench.dovecot.port, ssl=False, timeout=30)
        warm.login("mixed", PASSWORD)
        base = stored(engine)
        warm.append("INBOX", make_email(message_id="<warm@bench>", subject="Warm-up", body="Where can I download the contracts data?"))
        wait_until(lambda: stored(engine) > base, 120, "the latency worker's first message")
        wait_until(lambda: any("Warm-up" in json.dumps(m) for m in slack.fake.posted()), 60, "the first Slack card")
        probe_series(bench, engine, slack, warm, "IDLE")
        if bench.dovecot.doorbell is None:
            bench.add("IDLE + doorbell latency", f"not measured: Dovecot's doorbell script needs lua-socket ({LUA_SOCKET} missing)", "")
        else:
            bench.stop(adapter)
            host, port = bench.dovecot.doorbell
            rung = bench.helpdesk(settings, "intake", "imap", **bench.imap_env("mixed"), HELPDESK_IMAP_DOORBELL=f"{host}:{port}")
            base = stored(engine)
            warm.append("INBOX", make_email(message_id="<warm-bell@bench>", subject="Warm-up", body="Where can I download the contracts data?"))
            wait_until(lambda: stored(engine) > base, 120, "the doorbell adapter's first message")
            probe_series(bench, engine, slack, warm, "IDLE + doorbell")
            bench.stop(rung)
        warm.logout()
        bench.stop(worker)


def probe_series(bench: Bench, engine, slack: SlackServer, warm: IMAPClient, mode: str) -> None:  # noqa: ANN001
    """APPEND the probes one at a time; the time to each one's ticket and Slack card, and where it went."""
    n = bench.args.latency
    exists = ExistsWatcher(bench.dovecot.port, "mixed") if mode == "IDLE" else None  # Dovecot's own delay: IDLE's split only
    if exists is not None:
        exists.thread.start()
        time.sleep(0.5)
    load = load_average()
    probes: list[tuple[str, float, float, float | None]] = []  # token, appended (wall), stored after, card after
    for i in range(n):
        token = f"probe-{uuid.uuid4().hex[:10]}"
        base = stored(engine)
        warm.append("INBOX", make_email(message_id=f"<{token}@bench>", subject=f"Latency probe {token}",
                                        body="Where can I download the contracts data?"))
        appended_wall, appended = time.time(), time.perf_counter()
        wait_until(lambda: stored(engine) > base, 60, f"probe {i}", 0.002)
        to_stored = time.perf_counter() - appended
        card = _card_time(slack, token, timeout=30)
        probes.append((token, appended_wall, to_stored, None if card is None else card - appended_wall))
        time.sleep(random.uniform(0.05, 0.15))  # not in step with Dovecot's timers
    if exists is not None:
        exists.close()
    tokens = [f"{p[0]}@bench" for p in probes]
    with engine.connect() as c:
        rows = {r.external_id: r for r in c.execute(select(MESSAGE.c.external_id, MESSAGE.c.received_at, MESSAGE.c.stored_at)
                                                    .where(MESSAGE.c.external_id.in_(tokens)))}
    to_stored = [p[2] for p in probes]
    to_card = [p[3] for p in probes if p[3] is not None]
    p50, p95 = quantiles(to_stored)
    bench.add(f"{mode} latency, APPEND → ticket stored, p50 / p95 ({n} messages)", f"{p50:.0f} / {p95:.0f} ms", "p95 < 300 ms", p95 < 300)
    bench.figures[-1].load = load
    if to_card:
        c50, c95 = quantiles(to_card)
        missing = f", {n - len(to_card)} cards missing" if len(to_card) < n else ""
        bench.add(f"{mode} latency, APPEND → Slack card posted (local fake Slack), p50 / p95{missing}", f"{c50:.0f} / {c95:.0f} ms",
                  "p95 < 500 ms", c95 < 500 and not missing)
    else:
        bench.add(f"{mode} latency, APPEND → Slack card posted", "no card was posted", "p95 < 500 ms", False)
    bench.figures[-1].load = load
    received = [rows[f"{p[0]}@bench"].received_at.timestamp() - p[1] for p in probes if f"{p[0]}@bench" in rows]
    pipeline_share = [(r.stored_at - r.received_at).total_seconds() for r in rows.values()]
    splits = [("APPEND → adapter received (the server's notice and the fetch)", received)]
    if exists is not None:
        dovecot_share = [t - p[1] for p in probes if (t := exists.after(p[1])) is not None]
        adapter_share = [rows[f"{p[0]}@bench"].received_at.timestamp() - t for p in probes
                         if f"{p[0]}@bench" in rows and (t := exists.after(p[1])) is not None]
        splits += [("APPEND → EXISTS on an independent IDLE connection (Dovecot's notify delay)", dovecot_share),
                   ("EXISTS → adapter received (fetch; the adapter's own delay)", adapter_share)]
    splits.append(("adapter received → stored (queue, worker)", pipeline_share))
    for label, values in splits:
        if values:
            a, b = quantiles(values)
            bench.add(f"  split: {label}, p50 / p95", f"{a:.0f} / {b:.0f} ms", "")
            bench.figures[-1].load = load


def _card_time(slack: SlackServer, token: str, timeout: float) -> float | None:
    """When the card naming ``token`` was posted (the fake's message timestamp), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in slack.fake.posted():
            if token in json.dumps(message):
                return float(message["ts"])
        time.sleep(0.005)
    return None


def quantiles(values: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return statistics.median(values) * 1000, cuts[94] * 1000


# -- the run ------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backfill", type=int, default=3000, help="messages of the steady backfill (0: skip)")
    parser.add_argument("--mailbox", type=int, default=1000, help="messages of the mixed mailbox (0: skip it and the latency)")
    parser.add_argument("--latency", type=int, default=200, help="APPENDs timed one at a time (0: skip)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file per part")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--peer-venv", type=Path, default=Path(tempfile.gettempdir()) / "hdbench-django-helpdesk-2.6.1",
                        help="virtualenv for django-helpdesk (made and installed with pip when missing)")
    parser.add_argument("--skip-peer", action="store_true", help="do not measure django-helpdesk; use the recorded 26.7 msg/s")
    args = parser.parse_args()
    configure_logging("console", "ERROR")
    root = Path(tempfile.mkdtemp(prefix="hdbench-dovecot-"))
    root.chmod(0o755)
    work = Path(tempfile.mkdtemp(prefix="hdbench-"))
    # Dovecot rings the doorbell of the latency's second series (ops/dovecot/helpdesk-doorbell.lua) when it can run the script
    dovecot = Dovecot(root, with_ssl=False, doorbell=("127.0.0.1", free_port()) if LUA_SOCKET.exists() else None)
    dovecot.configure()
    bench = Bench(args, root, work, dovecot, work / "models")
    trainer = load_settings(environ={}, data_dir=work / "train", model_dir=bench.model_dir, log_level="ERROR")
    load_or_train(load_desk(trainer), ModelStore(bench.model_dir))  # every worker finds a trained model
    bench.compile_project()
    dovecot.start()
    try:
        if args.backfill:
            backfill(bench)
        if args.mailbox:
            settings, adapter = mixed(bench)
            if args.latency:
                latency(bench, settings, adapter)
    finally:
        for process in bench.processes:
            bench.stop(process)
        dovecot.stop()
        client = redis.Redis.from_url(args.redis_url)
        for namespace in bench.namespaces:
            keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
            if keys:
                client.delete(*keys)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    report(bench)


def report(bench: Bench) -> None:
    database = (bench.args.database_url or "sqlite").split(":")[0]
    table = Table(title=f"IMAP intake against Dovecot → tickets in {database}, {os.cpu_count()} cores", title_justify="left")
    for column in ("measure", "value", "target", "met", "load average"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for f in bench.figures:
        table.add_row(f.measure, f.value, f.target, "" if f.met is None else ("yes" if f.met else "NO"), f.load)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
