"""`helpdesk classify …` and `helpdesk reclassify`: evaluate, predict, train; correct a ticket."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ops.logs import command_settings as _settings

if TYPE_CHECKING:  # scikit-learn loads with these: commands import them when they run, so `helpdesk --help` stays fast
    from classifiers.evaluation import Evaluation
    from classifiers.pipeline import EnquiryClassifier
    from config.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Evaluate, run and retrain the enquiry classifiers.")

console = Console()
err = Console(stderr=True)
REGRESSION_TOLERANCE = 0.005  # a new model may score this much lower on the real set (noise between runs) and still replace




def _examples(path: Path | None):  # noqa: ANN202 - list[Example]
    from workers.intake.training import read_examples, shipped_examples, split# noqa: PLC0415
    from workers.errors import DatasetError

    if path is None:
        return split(shipped_examples())[1]
    try:
        return read_examples(path)
    except OSError as exc:
        err.print(f"[red]cannot read {escape(str(path))}: {escape(exc.strerror or type(exc).__name__)}[/red]")
        raise typer.Exit(1) from exc
    except DatasetError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from exc


def _classifiers(settings: Settings) -> tuple[EnquiryClassifier, EnquiryClassifier]:
    """(model, keyword baseline)."""
    from classifiers.pipeline import EnquiryClassifier  # noqa: PLC0415
    from ops.runtime import Runtime  # noqa: PLC0415
    from config.desk import load_desk  # noqa: PLC0415
    from workers.intake.training import ModelStore, load_or_train  # noqa: PLC0415

    desk = load_desk(settings)
    with Runtime(settings) as runtime:
        models = load_or_train(desk, ModelStore(settings.resolved_model_dir), runtime.engine)
    return EnquiryClassifier(desk, settings.triage_confidence, models), EnquiryClassifier(desk, settings.triage_confidence)


@app.command("eval")
def eval_(
    file: Annotated[Path | None, typer.Argument(metavar="FILE", help="JSON lines: text, subject?, sender?, type?, sector?. Default: the shipped held-out split.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    real: Annotated[bool, typer.Option("--real", help="Cross-validate on the real development set, folds grouped by source project.")] = False,
) -> None:
    """Precision, recall and F1 per class, macro-F1, accuracy and the confusion matrix — model beside keyword baseline."""
    from workers.intake.training import evaluate_examples  # noqa: PLC0415

    if real:
        _eval_real(as_json)
        return
    settings = _settings()
    examples = _examples(file)
    model, baseline = _classifiers(settings)
    results = {"model": evaluate_examples(model, examples), "keyword_baseline": evaluate_examples(baseline, examples)}
    if as_json:
        data = {name: {k: v.to_dict() for k, v in r.items()} for name, r in results.items()}
        data["model_version"] = model.version
        console.print_json(json.dumps(data))
        return
    console.print(f"{len(examples)} examples; model version {model.version}")
    summary = Table(title="Macro-F1 and accuracy", title_justify="left")
    for column in ("label", "classifier", "macro-F1", "accuracy", "n"):
        summary.add_column(column, justify="left" if column in {"label", "classifier"} else "right")
    for label in ("type", "sector"):
        for name in ("model", "keyword_baseline"):
            if label in results[name]:
                ev = results[name][label]
                summary.add_row(label, name.replace("_", " "), f"{ev.macro_f1:.3f}", f"{ev.accuracy:.3f}", str(ev.count))
    console.print(summary)
    for label, ev in results["model"].items():
        _per_class(label, ev)
        _confusion(label, ev)


def _eval_real(as_json: bool) -> None:
    from classifiers.embeddings import load_wordllama# noqa: PLC0415
    from classifiers.errors import EmbeddingsUnavailable
    from classifiers.pipeline import EnquiryClassifier  # noqa: PLC0415
    from workers.intake.real_set import (  # noqa: PLC0415
        cross_validate, cross_validate_embeddings, real_metrics, sector_scores, triage_threshold,
    )
    from config.desk import load_desk  # noqa: PLC0415
    from workers.intake.training import read_real_set, shipped_examples  # noqa: PLC0415

    settings = _settings()
    desk = load_desk(settings)
    real = read_real_set()
    with console.status("cross-validating") as status:
        cv = cross_validate(desk, real, list(shipped_examples()),
                            on_fold=lambda n, total: status.update(f"cross-validating: fold {n} of {total} done"))
        try:  # the candidate model beside it, on the same folds, when the package that ships the embeddings is there
            embedder, missing = load_wordllama(), ""
        except EmbeddingsUnavailable as exc:
            embedder, missing = None, str(exc)
        candidate = None if embedder is None else cross_validate_embeddings(
            desk, real, list(shipped_examples()), embedder,
            on_fold=lambda n, total: status.update(f"cross-validating with embeddings: fold {n} of {total} done"))
    triage = triage_threshold(cv)
    sectors = sector_scores(EnquiryClassifier(desk, settings.triage_confidence), real)
    if as_json:
        data = {**real_metrics(cv, triage), "enquiries": len(real), "projects": len({r.project for r in real}),
                "real_cv_embeddings": ({**candidate.model.to_dict(), "embedder": embedder.name}
                                       if candidate is not None and embedder is not None else {"unavailable": missing}),
                "sector": {**sectors.evaluation.to_dict(), "given": sectors.given, "precision_given": round(sectors.precision_given, 4),
                           "unknown_when_no_evidence": round(sectors.unknown_when_no_evidence, 4)}}
        console.print_json(json.dumps(data))
        return
    console.print(f"{len(real)} real enquiries from {len({r.project for r in real})} projects; "
                  f"{cv.folds} folds grouped by project (no project on both sides)")
    summary = Table(title="Type, cross-validated", title_justify="left")
    for column in ("classifier", "macro-F1", "accuracy"):
        summary.add_column(column, justify="left" if column == "classifier" else "right")
    summary.add_row("model", f"{cv.model.macro_f1:.3f}", f"{cv.model.accuracy:.3f}")
    if candidate is not None:
        summary.add_row("model + embeddings (candidate)", f"{candidate.model.macro_f1:.3f}", f"{candidate.model.accuracy:.3f}")
    summary.add_row("keyword baseline", f"{cv.baseline.macro_f1:.3f}", f"{cv.baseline.accuracy:.3f}")
    console.print(summary)
    if candidate is None:
        console.print(f"model + embeddings: not measured — {escape(missing)}")
    _per_class("type", cv.model)
    if candidate is not None:
        compared = Table(title="type: F1 per class, model beside model + embeddings", title_justify="left")
        for column in ("type", "model", "+ embeddings", "support"):
            compared.add_column(column, justify="left" if column == "type" else "right")
        for name, m in cv.model.per_class.items():
            other = candidate.model.per_class.get(name, {"f1": 0.0})
            compared.add_row(name, f"{m['f1']:.2f}", f"{other['f1']:.2f}", str(m["support"]))
        console.print(compared)
    _confusion("type", cv.model)
    if triage.threshold > 1:
        console.print(f"triage: no confidence reaches {triage.target:.0%} precision — every ticket would need triage")
    else:
        console.print(f"triage: below {triage.threshold:.2f} a ticket needs triage; labels at or above it are right "
                      f"{triage.precision:.0%} of the time; {triage.share_triaged:.0%} of enquiries need triage "
                      f"(set HELPDESK_TRIAGE_CONFIDENCE={triage.threshold:.2f})")
    given = (f"given for {sectors.given} of {len(real)}, right {sectors.precision_given:.0%} of those" if sectors.given
             else f"given for none of {len(real)}")
    console.print(f"sector from evidence: {given}; unknown for {sectors.unknown_when_no_evidence:.0%} of enquiries without evidence")


def _per_class(label: str, ev: Evaluation) -> None:
    table = Table(title=f"{label}: per class (model)", title_justify="left")
    for column in (label, "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == label else "right")
    for name, m in ev.per_class.items():
        table.add_row(name, f"{m['precision']:.2f}", f"{m['recall']:.2f}", f"{m['f1']:.2f}", str(m["support"]))
    console.print(table)


def _confusion(label: str, ev: Evaluation) -> None:
    """Columns are numbered (the rows say which class each number is): names cut to fit would read alike."""
    table = Table(title=f"{label}: confusion (rows true, columns predicted)", title_justify="left", padding=(0, 1))
    table.add_column("true \\ predicted", no_wrap=True)
    for number in range(1, len(ev.labels) + 1):
        table.add_column(str(number), justify="right", no_wrap=True)
    for i, (name, row) in enumerate(zip(ev.labels, ev.confusion)):
        table.add_row(f"{i + 1} {name}", *(f"[bold]{v}[/bold]" if j == i else (str(v) if v else "·") for j, v in enumerate(row)))
    console.print(table)


@app.command()
def predict(file: Annotated[Path, typer.Argument(metavar="FILE", help="JSON lines with text and optional subject and sender.")]) -> None:
    """One JSON line per input record, in order: type, sector, language, confidence, needs_triage."""
    settings = _settings()
    examples = _examples(file)
    model, _ = _classifiers(settings)
    for example in examples:
        result = model.classify(subject=example.subject, text=example.text, sender=example.sender)
        sys.stdout.write(
            json.dumps(
                {
                    "type": result.type.value,
                    "sector": result.sector.value,
                    "language": result.language.value,
                    "confidence": result.type.confidence,
                    "needs_triage": result.needs_triage,
                    "reasons": {"type": list(result.type.reasons), "sector": list(result.sector.reasons)},
                },
                ensure_ascii=False,
            )
            + "\n"
        )


@app.command()
def train(
    all_examples: Annotated[bool, typer.Option("--all", help="Train on the held-out split too (then `eval` on it is no longer fair).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Save the new model even if it scores worse on the real set.")] = False,
    folds: Annotated[int, typer.Option(min=2, max=10, help="Cross-validation folds on the real set (grouped by project).")] = 5,
) -> None:
    """Retrain from the shipped examples, the real set and every staff correction; the new model replaces the current
    one only if its cross-validated macro-F1 on the real set is no worse (old and new are printed)."""
    from classifiers.pipeline import EnquiryClassifier  # noqa: PLC0415
    from ops.runtime import Runtime  # noqa: PLC0415
    from workers.intake.real_set import cross_validate, real_metrics, recorded_real_f1, triage_threshold  # noqa: PLC0415
    from workers.intake.training import (  # noqa: PLC0415
        ModelStore, correction_examples, desk_people, evaluate_examples, read_real_set, shipped_examples, split,
    )
    from config.desk import load_desk  # noqa: PLC0415
    from workers.intake.training import train as fit  # noqa: PLC0415

    settings = _settings()
    desk = load_desk(settings)
    store = ModelStore(settings.resolved_model_dir)
    train_split, heldout = split(shipped_examples())
    self_written = [*train_split, *heldout] if all_examples else train_split
    real = read_real_set()
    with Runtime(settings) as runtime:
        corrections = correction_examples(runtime.engine, desk_people(desk))  # a stranger's correction never trains the model
    current = store.newest()
    with console.status("cross-validating on the real set") as status:
        cv = cross_validate(desk, real, self_written, corrections, folds=folds,
                            on_fold=lambda n, total: status.update(f"cross-validating on the real set: fold {n} of {total} done"))
        status.update(f"training on {len(self_written)} examples, {len(real)} real enquiries and {len(corrections)} corrections")
        models = fit(desk, [*self_written, *(r.example for r in real)], corrections, version=store.next_version())
    models.metrics = real_metrics(cv, triage_threshold(cv))
    if not all_examples:
        results = evaluate_examples(EnquiryClassifier(desk, settings.triage_confidence, models), heldout)
        models.metrics.update({name: ev.to_dict() for name, ev in results.items()})
    old = recorded_real_f1(current)
    table = Table(title="Real set, cross-validated by project", title_justify="left")
    for column in ("model", "macro-F1", "accuracy"):
        table.add_column(column, justify="left" if column == "model" else "right")
    if current is not None:
        old_cv = current.metrics.get("real_cv") or {}
        table.add_row(f"current {current.version}", f"{old:.3f}" if old is not None else "not measured",
                      f"{old_cv['accuracy']:.3f}" if "accuracy" in old_cv else "")
    table.add_row(f"new {models.version}", f"{cv.model.macro_f1:.3f}", f"{cv.model.accuracy:.3f}")
    console.print(table)
    if old is not None and cv.model.macro_f1 < old - REGRESSION_TOLERANCE and not force:
        err.print(f"[red]not saved: the new model scores {cv.model.macro_f1:.3f} against {old:.3f} — the current model stays "
                  f"(look at the corrections, or --force)[/red]")
        raise typer.Exit(1)
    path = store.save(models)
    console.print(f"saved model [bold]{models.version}[/bold] → {path}")
    console.print(f"trained on {models.examples} examples and {models.corrections} corrections")
    for name in ("type", "sector"):
        if name in models.metrics:
            metrics = models.metrics[name]
            console.print(f"held-out {name}: macro-F1 {metrics['macro_f1']:.3f}, accuracy {metrics['accuracy']:.3f}")
