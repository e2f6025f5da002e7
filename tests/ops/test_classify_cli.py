"""`helpdesk classify eval|predict|train` and `helpdesk reclassify`: corrections become training data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.db import create_db_engine
from storage.models import Correction
from tests.cli import cli_env, run_cli
from tests.factories import make_email
from workers.intake.training import ModelStore, correction_examples, shipped_examples, split


@pytest.fixture
def env(tmp_path: Path, redis_url: str, namespace: str, database_url: str, model_dir: Path) -> dict[str, str]:
    # A model folder of this test's own, seeded with the session's trained model (copying is cheaper than training).
    own = tmp_path / "models"
    own.mkdir()
    for path in model_dir.iterdir():
        (own / path.name).write_bytes(path.read_bytes())
    return cli_env(data_dir=tmp_path / "data", redis_url=redis_url, redis_namespace=namespace, database_url=database_url,
                   model_dir=own, log_level="WARNING")


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def test_eval_reports_model_beside_baseline(tmp_path: Path, env: dict[str, str]) -> None:
    heldout = split(shipped_examples())[1][:40]
    records = [{"text": e.text, "subject": e.subject, "sender": e.sender, "type": e.type, "sector": e.sector} for e in heldout]
    records.append({"text": "Where can I download the contracts data as CSV?", "type": "data_use"})  # sector label missing: fine
    result = json.loads(run_cli(["classify", "eval", str(_write_jsonl(tmp_path / "eval.jsonl", records)), "--json"], env).stdout)
    model, baseline = result["model"], result["keyword_baseline"]
    assert model["type"]["count"] == 41
    assert model["sector"]["count"] == 40
    for key in ("per_class", "macro_f1", "accuracy", "confusion", "labels"):
        assert key in model["type"]
    assert set(model["type"]["per_class"]["data_use"]) == {"precision", "recall", "f1", "support"}
    assert model["type"]["macro_f1"] > baseline["type"]["macro_f1"]


def test_eval_table_on_the_shipped_heldout_split(env: dict[str, str]) -> None:
    output = run_cli(["classify", "eval"], env).stdout
    assert "Macro-F1 and accuracy" in output
    assert "keyword baseline" in output
    assert "confusion" in output


def test_predict_prints_one_line_per_record_in_order(tmp_path: Path, env: dict[str, str]) -> None:
    records = [
        {"subject": "Webinar recording", "text": "Is the recording of last week's OSDS webinar available?", "sender": "a@who.int"},
        {"text": "Hola, ¿dónde puedo descargar los datos de contratos?", "sender": "x@gmail.com"},
        {"text": "Bonjour, le lien vers la page de documentation sur les extensions est cassé."},
    ]
    lines = run_cli(["classify", "predict", str(_write_jsonl(tmp_path / "in.jsonl", records))], env).stdout.splitlines()
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    assert {"type", "sector", "language", "confidence", "needs_triage"} <= set(first)
    assert (first["sector"], second["language"], third["language"]) == ("multilateral_donor", "es", "fr")
    assert first["type"] == "training"


def test_malformed_dataset_names_the_line(tmp_path: Path, env: dict[str, str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"subject": "no text"}\n')
    with pytest.raises(AssertionError, match="bad.jsonl:2"):
        run_cli(["classify", "predict", str(bad)], env)


def test_corrections_are_kept_and_feed_retraining(tmp_path: Path, env: dict[str, str], database_url: str) -> None:
    # Given a ticket
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "a.eml").write_bytes(make_email(subject="Quick question", body="Could someone call me back about our plans?"))
    run_cli(["import", str(mail)], env)
    run_cli(["worker", "--until-idle"], env)
    # When staff correct its type and sector (the same correction twice, as a retried action would)
    for _ in range(2):
        run_cli(["reclassify", "HD-1", "--type", "scoping", "--sector", "civil_society", "--by", "ana"], env)
    # Then the ticket carries the correction, explained, once
    [ticket] = json.loads(run_cli(["tickets", "--json"], env).stdout)
    assert (ticket["type"], ticket["sector"], ticket["needs_triage"]) == ("scoping", "civil_society", False)
    assert ticket["classification"]["type"]["reasons"][0].startswith("corrected by ana (was ")
    engine = create_db_engine(database_url)
    with engine.connect() as c:
        corrections = c.execute(select(Correction.__table__)).all()
    assert sorted((r.field, r.new_value, r.corrected_by) for r in corrections) == [("sector", "civil_society", "ana"), ("type", "scoping", "ana")]
    # And they are training data: `classify train` uses them and saves a newer version
    [example] = correction_examples(engine)
    engine.dispose()
    assert (example.type, example.sector, example.subject) == ("scoping", "civil_society", "Quick question")
    before = ModelStore(Path(env["HELPDESK_MODEL_DIR"])).versions()
    output = run_cli(["classify", "train", "--folds", "2"], env).stdout
    assert "1 corrections" in output
    assert "held-out type: macro-F1" in output
    after = ModelStore(Path(env["HELPDESK_MODEL_DIR"])).versions()
    assert len(after) == len(before) + 1
    assert after[-1].name > before[-1].name


def test_reclassify_refuses_unknown_labels_and_tickets(env: dict[str, str]) -> None:
    with pytest.raises(AssertionError, match="unknown type 'gossip'"):
        run_cli(["reclassify", "HD-1", "--type", "gossip", "--by", "ana"], env)
    with pytest.raises(AssertionError, match="there is no HD-999"):
        run_cli(["reclassify", "HD-999", "--type", "schema", "--by", "ana"], env)


def test_reprocess_applies_the_current_model_and_keeps_corrections(tmp_path: Path, env: dict[str, str], database_url: str) -> None:
    from sqlalchemy import update

    from storage.intake_store import TICKET

    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "a.eml").write_bytes(make_email(message_id="<r1@x.org>", subject="Webinar", body="Can we join the next OSDS training webinar?"))
    (mail / "b.eml").write_bytes(make_email(message_id="<r2@x.org>", subject="Field question", body="What does the buyer.id field mean?"))
    run_cli(["import", str(mail)], env)
    run_cli(["worker", "--until-idle"], env)
    # Pretend an older model got both wrong; staff corrected ticket 2 to something deliberate
    from storage.intake_store import EVENT

    engine = create_db_engine(database_url)
    with engine.begin() as c:
        c.execute(update(TICKET).values(type="other"))
    number = {t["subject"]: t["number"] for t in json.loads(run_cli(["tickets", "--json"], env).stdout)}
    run_cli(["reclassify", number["Field question"], "--type", "documentation", "--by", "ana"], env)
    dry = run_cli(["reprocess", "--dry-run"], env).stdout
    assert "Would change" in dry
    out = run_cli(["reprocess", "--reparse"], env).stdout
    assert "re-parsed from the raw archive: 2" in out
    assert "staff corrections kept: 1" in out
    tickets = {t["subject"]: t for t in json.loads(run_cli(["tickets", "--json"], env).stdout)}
    assert tickets["Webinar"]["type"] == "training"
    assert tickets["Field question"]["type"] == "documentation"  # the correction stands

    def reclassified() -> int:
        with engine.connect() as c:
            return len(c.execute(select(EVENT).where(EVENT.c.kind == "reclassified")).all())

    before = reclassified()
    run_cli(["reprocess"], env)  # nothing left to change: no new events
    assert reclassified() == before
    engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_a_current_model_that_scored_better_on_the_real_set_when_retrained_then_it_stays_unless_forced(
    env: dict[str, str]
) -> None:
    import subprocess
    import sys

    # Given: the current model recorded a cross-validated macro-F1 no new model can reach
    store = ModelStore(Path(env["HELPDESK_MODEL_DIR"]))
    current = store.newest()
    current.metrics = {**current.metrics, "real_cv": {"macro_f1": 0.99, "accuracy": 0.99}}
    current.version = store.next_version()
    store.save(current)
    before = store.versions()

    # When
    refused = subprocess.run([sys.executable, "-m", "ops", "classify", "train", "--folds", "2"], env=env, capture_output=True, text=True, timeout=600)
    after_refusal = store.versions()
    forced = run_cli(["classify", "train", "--force", "--folds", "2"], env).stdout

    # Then
    assert refused.returncode == 1
    assert "not saved" in refused.stderr
    assert f"current {current.version}" in refused.stdout
    assert "0.990" in refused.stdout
    assert after_refusal == before
    assert "saved model" in forced
    assert len(store.versions()) == len(before) + 1


def test_given_a_missing_file_when_predicting_then_a_plain_message_not_an_errno(tmp_path: Path, env: dict[str, str]) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "ops", "classify", "predict", str(tmp_path / "missing.jsonl")], env=env,
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 1
    assert "cannot read" in result.stderr
    assert "No such file or directory" in result.stderr
    assert "[Errno" not in result.stderr
