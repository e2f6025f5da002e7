"""Operators: status, /healthz /readyz /metrics, dead letters and alerts — against real Redis and both databases."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import dramatiq
import httpx
import pytest
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import func, select

from config.broker import close_broker
from config.settings import Settings
from config.queues import INTAKE_QUEUE, PROCESS_ACTOR
from ops.metrics import adapter_label
from ops.runtime import Runtime
from storage.intake_store import TICKET
from storage.models import utcnow
from tests.cli import cli_env, run_cli
from tests.factories import make_message
from tests.servers.asgi import serve

pytestmark = pytest.mark.slow


def _intake_message(external_id: str) -> dramatiq.Message:
    return dramatiq.Message(queue_name=INTAKE_QUEUE, actor_name=PROCESS_ACTOR, args=(make_message(external_id).to_json(),),
                            kwargs={}, options={})


def _dead_letter(broker: RedisBroker, message: dramatiq.Message) -> None:
    """Dead-letter a message the way a worker does: fetch it through a consumer, then nack it.

    Call it while the queue holds nothing else (the consumer takes the first message there is).
    """
    broker.enqueue(message)
    consumer = broker.consume(INTAKE_QUEUE, prefetch=1, timeout=100)
    try:
        for _ in range(50):
            proxy = next(consumer)
            if proxy is not None:
                assert proxy.message_id == message.message_id
                proxy.fail()
                consumer.nack(proxy)
                return
        raise AssertionError("the consumer never received the message")
    finally:
        consumer.close()


@pytest.fixture
def env(tmp_path: Path, redis_url: str, namespace: str, database_url: str, model_dir: Path) -> dict[str, str]:
    return cli_env(data_dir=tmp_path / "data", redis_url=redis_url, redis_namespace=namespace, database_url=database_url,
                   model_dir=model_dir, log_level="WARNING", heartbeat_timeout_seconds=2)


def test_status_and_metrics_see_every_state(settings: Settings, env: dict[str, str], namespace: str, redis_url: str) -> None:
    settings = settings.model_copy(update={"heartbeat_timeout_seconds": 2})
    with Runtime(settings) as runtime:
        broker = runtime.broker
        runtime.engine  # noqa: B018 - migrate
        _dead_letter(broker, _intake_message("dead"))  # dead-lettered
        for i in range(3):
            broker.enqueue(_intake_message(f"ready-{i}"))  # ready
        broker.enqueue(_intake_message("later"), delay=8_000)  # delayed (still, when the metrics are read)
        ghost = RedisBroker(url=redis_url, namespace=namespace, heartbeat_timeout=2000)
        ghost.do_fetch(INTAKE_QUEUE, 1)  # a worker takes one message … and dies
        close_broker(ghost)
        time.sleep(2.5)  # its heartbeat is now older than the timeout
        with serve(__import__("ops.web", fromlist=["build_app"]).build_app(runtime)) as url:
            metrics = httpx.get(f"{url}/metrics").text
            ready = httpx.get(f"{url}/readyz").json()
            alive = httpx.get(f"{url}/healthz").status_code
    assert alive == 200
    assert ready == {"ready": True, "checks": {"redis": "ok", "database": "ok", "migrations": "ok"}}
    assert 'helpdesk_queue_messages{queue="intake",state="ready"} 2.0' in metrics
    assert 'helpdesk_queue_messages{queue="intake",state="delayed"} 1.0' in metrics
    assert 'helpdesk_queue_messages{queue="intake",state="in_flight"} 1.0' in metrics
    assert 'helpdesk_queue_messages{queue="intake",state="stranded"} 1.0' in metrics
    assert 'helpdesk_queue_messages{queue="intake",state="dead_lettered"} 1.0' in metrics
    assert "helpdesk_healthy 0.0" in metrics
    assert "helpdesk_intake_to_ticket_seconds_bucket" in metrics
    with pytest.raises(AssertionError, match="exited 1"):  # stranded work: unhealthy, non-zero for cron and monitors
        run_cli(["status"], env)
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "ops", "status", "--json"], env=env, capture_output=True, text=True, timeout=120)
    data = json.loads(result.stdout)
    assert result.returncode == 1
    assert data["status"] == "unhealthy"
    intake = next(q for q in data["queues"] if q["queue"] == "intake")
    assert (intake["ready"], intake["delayed"], intake["in_flight"], intake["stranded"], intake["dead_lettered"]) == (2, 1, 1, 1, 1)
    assert {p["condition"] for p in data["problems"]} >= {"stranded", "no_workers", "dead_letters"}
    # a worker starts: it recovers the stranded message and drains everything; dead letters remain a warning
    run_cli(["worker", "--until-idle"], env)
    after = subprocess.run([sys.executable, "-m", "ops", "status", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert after.returncode == 0
    assert json.loads(after.stdout)["status"] == "warning"


def test_dead_letters_replay_once_even_after_redis_forgot_them(settings: Settings, env: dict[str, str], database_url: str) -> None:
    with Runtime(settings) as runtime:
        runtime.engine  # noqa: B018
        _dead_letter(runtime.broker, _intake_message("replay-me"))
        _dead_letter(runtime.broker, _intake_message("expired"))
        # Redis forgets one of them (its 7-day TTL), after the database mirrored it
        listed = json.loads(run_cli(["dlq", "list", "--json"], env).stdout)
        assert len(listed) == 2
        assert {row["kind"] for row in listed} == {"dead_letter"}
        client = runtime.broker.client
        forgotten = 0
        for redis_id, raw in client.hgetall(f"{settings.redis_namespace}:intake.XQ.msgs").items():
            if b"expired" in raw:
                client.hdel(f"{settings.redis_namespace}:intake.XQ.msgs", redis_id)
                client.zrem(f"{settings.redis_namespace}:intake.XQ", redis_id)
                forgotten += 1
        assert forgotten == 1
        shown = run_cli(["dlq", "show", str(listed[0]["id"])], env).stdout
        assert "dead_letter" in shown
        out = run_cli(["dlq", "replay", "--all"], env).stdout
        assert out.count(": replayed") == 2
        run_cli(["worker", "--until-idle"], env)
        assert run_cli(["dlq", "replay", "--all"], env).stdout.strip() == ""  # nothing open any more
        run_cli(["worker", "--until-idle"], env)
        with runtime.engine.connect() as c:
            assert c.execute(select(func.count()).select_from(TICKET)).scalar_one() == 2  # each exactly once
        assert client.zcard(f"{settings.redis_namespace}:intake.XQ") == 0


def test_alerts_are_posted_once_and_recovered(settings: Settings, slack, engine) -> None:  # noqa: ANN001
    from config.desk import load_desk
    from workers.desk.operations import Desk
    from workers.outbound.effects import Effects
    from workers.ops.health import Problem
    from workers.desk.scheduled import Jobs
    from workers.outbound.slack import SlackPoster, make_client
    from tests.servers.slack import TOKEN

    problems = [Problem("queue_stuck", "intake", "unhealthy", "the oldest ready message on intake has waited 900 s")]
    queued: list[str] = []
    desk = Desk(load_desk(settings))
    jobs = Jobs(engine, desk, queued.append, health=lambda: list(problems), ops_channel="#ops")
    now = utcnow()
    assert jobs.alerts(now) == {"opened": 1, "closed": 0}
    assert jobs.alerts(now + timedelta(minutes=1)) == {"opened": 0, "closed": 0}  # still the same incident
    problems.clear()
    assert jobs.alerts(now + timedelta(minutes=12)) == {"opened": 0, "closed": 1}
    assert jobs.alerts(now + timedelta(minutes=13)) == {"opened": 0, "closed": 0}
    effects = Effects(engine, desk, SlackPoster(make_client(TOKEN, slack.api_url)))
    for key in queued:
        effects.run(key)
    texts = [m["text"] for m in slack.fake.posted("#ops")]
    assert len(texts) == 2
    assert texts[0].startswith("🔴 the oldest ready message")
    assert texts[1].startswith("✅ recovered after 12 min")


def test_readyz_says_when_migrations_are_pending(settings: Settings, database_url: str) -> None:
    from storage import schema
    from storage.db import create_db_engine

    engine = create_db_engine(database_url)
    schema.upgrade(engine, "0001")
    with Runtime(settings) as runtime:
        runtime.__dict__["engine"] = engine  # this runtime's database stays at the first revision
        from ops.web import build_app

        with serve(build_app(runtime)) as url:
            response = httpx.get(f"{url}/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"].startswith("pending")
    engine.dispose()


def test_monthly_report_as_csv(env: dict[str, str], tmp_path: Path) -> None:
    run_cli(["db", "upgrade"], env)
    result = run_cli(["report", "--month", "2026-11", "--csv", str(tmp_path / "csv")], env)
    assert "Management information" in result.stdout
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == [
        "backlog.csv", "by_month.csv", "engagements.csv", "enquirers.csv", "implementations.csv", "organisations.csv", "sla.csv",
        "summary.csv", "times.csv"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_open_quarantine_fails_strict_status_and_every_surface_counts_it_alike(settings: Settings, env: dict[str, str]) -> None:
    import subprocess
    import sys

    from intake.base import Rejected
    from intake.state import AdapterHealth

    with Runtime(settings) as runtime:
        runtime.engine  # noqa: B018 - migrate
        # Given one rejected input (stored by the worker) and one dead letter
        runtime.sink.reject(Rejected(channel="email", key="k" * 64, reason="adapter_error", detail="RecursionError: deep",
                                     source="imap:u@h/INBOX;uidvalidity=1;uid=7", received_at=utcnow()))
        run_cli(["worker", "--until-idle"], env)
        _dead_letter(runtime.broker, _intake_message("dead"))
        # and an adapter loop that runs, and crashed once
        health = AdapterHealth(runtime.broker.client, settings.redis_namespace)
        health.beat("imap:u@h/INBOX")
        health.crashed("imap:u@h/INBOX", "RuntimeError: boom")
        with serve(__import__("ops.web", fromlist=["build_app"]).build_app(runtime)) as url:
            metrics = httpx.get(f"{url}/metrics").text
    # When the operator asks
    plain = subprocess.run([sys.executable, "-m", "ops", "status", "--json"], env=env, capture_output=True, text=True, timeout=120)
    strict = subprocess.run([sys.executable, "-m", "ops", "status", "--json", "--strict"], env=env, capture_output=True, text=True, timeout=120)
    listed = json.loads(run_cli(["dlq", "list", "--json"], env).stdout)
    report = json.loads(run_cli(["report", "--json"], env).stdout)
    # Then the quarantined input is a warning: fine for `status`, a failure for `status --strict`
    data = json.loads(plain.stdout)
    assert plain.returncode == 0
    assert data["status"] == "warning"
    assert strict.returncode == 1
    problems = {p["condition"]: p for p in data["problems"]}
    assert problems["quarantined"]["severity"] == "warning"
    assert problems["quarantined"]["detail"].startswith("1 quarantined input(s) open")
    assert problems["adapter_restarted"]["subject"] == "imap:u@h/INBOX"
    # and status, dlq list and the report count the same rows
    assert data["quarantined"] == len(listed) == report["quarantined"] == 2
    assert data["dead_letters_open"] == 1
    # and /metrics shows them, and the adapter's heartbeat and restarts
    assert "helpdesk_quarantined_open 2.0" in metrics
    label = adapter_label("imap:u@h/INBOX")
    assert label.startswith("imap:")
    assert label.endswith("/INBOX")
    assert "u@h" not in metrics  # no login, no host
    assert f'helpdesk_adapter_running{{adapter="{label}"}} 1.0' in metrics
    assert f'helpdesk_adapter_restarts_total{{adapter="{label}"}} 1.0' in metrics


# -- who may read the operational endpoints -------------------------------------------------------
def _get(app, path: str, client_host: str, token: str | None = None) -> httpx.Response:  # noqa: ANN001
    import asyncio

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client_host, 40000))
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with httpx.AsyncClient(transport=transport, base_url="http://desk.example") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(call())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_no_ops_token_when_a_remote_client_asks_then_only_healthz_answers(settings: Settings) -> None:
    from ops.web import build_app

    with Runtime(settings) as runtime:
        app = build_app(runtime)
        remote = {path: _get(app, path, "203.0.113.9").status_code for path in ("/healthz", "/readyz", "/metrics")}
        local = {path: _get(app, path, "127.0.0.1").status_code for path in ("/healthz", "/readyz", "/metrics")}
    assert remote == {"/healthz": 200, "/readyz": 403, "/metrics": 403}
    assert local == {"/healthz": 200, "/readyz": 200, "/metrics": 200}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_an_ops_token_when_asked_then_only_the_bearer_of_it_is_answered_from_anywhere(settings: Settings) -> None:
    from pydantic import SecretStr

    from ops.web import build_app

    token = "ops-token-0123456789abcdef"
    with Runtime(settings.model_copy(update={"ops_token": SecretStr(token)})) as runtime:
        app = build_app(runtime)
        answers = {
            "none, local": _get(app, "/metrics", "127.0.0.1").status_code,
            "wrong": _get(app, "/metrics", "203.0.113.9", "not-the-token-at-all").status_code,
            "right, remote": _get(app, "/metrics", "203.0.113.9", token).status_code,
            "readyz right": _get(app, "/readyz", "203.0.113.9", token).status_code,
            "readyz none": _get(app, "/readyz", "203.0.113.9").status_code,
        }
    assert answers == {"none, local": 401, "wrong": 401, "right, remote": 200, "readyz right": 200, "readyz none": 401}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_redis_unreachable_when_readyz_is_read_then_it_names_states_not_hosts(settings: Settings, engine) -> None:  # noqa: ANN001
    import types

    import redis as redis_lib

    from ops.web import readiness
    from tests.servers.base import free_port

    dead = redis_lib.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    runtime = types.SimpleNamespace(broker=types.SimpleNamespace(client=dead), engine=engine)
    checks = readiness(runtime)
    assert checks == {"redis": "unreachable", "database": "ok", "migrations": "ok"}
    assert "127.0.0.1" not in json.dumps(checks)
