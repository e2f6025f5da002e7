"""`helpdesk classify …` and `helpdesk reclassify`: evaluate, predict, train; correct a ticket."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from classifiers.evaluation import Evaluation
from classifiers.pipeline import EnquiryClassifier
from config.desk import load_desk
from config.settings import Settings
from ops.logs import command_settings as _settings

app = typer.Typer(no_args_is_help=True, help="Evaluate, run and retrain the enquiry classifiers.")

console = Console()
err = Console(stderr=True)




def _examples(path: Path | None):  # noqa: ANN202 - list[Example]
    from workers.training import DatasetError, read_examples, shipped_examples, split  # noqa: PLC0415

    if path is None:
        return split(shipped_examples())[1]
    try:
        return read_examples(path)
    except (OSError, DatasetError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


def _classifiers(settings: Settings) -> tuple[EnquiryClassifier, EnquiryClassifier]:
    """(model, keyword baseline)."""
    from ops.runtime import Runtime  # noqa: PLC0415
    from workers.training import ModelStore, load_or_train  # noqa: PLC0415

    desk = load_desk(settings)
    with Runtime(settings) as runtime:
        models = load_or_train(desk, ModelStore(settings.resolved_model_dir), runtime.engine)
    return EnquiryClassifier(desk, settings.triage_confidence, models), EnquiryClassifier(desk, settings.triage_confidence)


@app.command("eval")
def eval_(
    file: Annotated[Path | None, typer.Argument(help="JSON lines: text, subject?, sender?, type?, sector?. Default: the shipped held-out split.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Precision, recall and F1 per class, macro-F1, accuracy and the confusion matrix — model beside keyword baseline."""
    from workers.training import evaluate_examples  # noqa: PLC0415

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


def _per_class(label: str, ev: Evaluation) -> None:
    table = Table(title=f"{label}: per class (model)", title_justify="left")
    for column in (label, "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == label else "right")
    for name, m in ev.per_class.items():
        table.add_row(name, f"{m['precision']:.2f}", f"{m['recall']:.2f}", f"{m['f1']:.2f}", str(m["support"]))
    console.print(table)


def _confusion(label: str, ev: Evaluation) -> None:
    table = Table(title=f"{label}: confusion (rows true, columns predicted)", title_justify="left")
    table.add_column("")
    short = [name[:6] for name in ev.labels]
    for name in short:
        table.add_column(name, justify="right")
    for name, row in zip(ev.labels, ev.confusion):
        table.add_row(name, *(f"[bold]{v}[/bold]" if i == ev.labels.index(name) else (str(v) if v else "·") for i, v in enumerate(row)))
    console.print(table)


@app.command()
def predict(file: Annotated[Path, typer.Argument(help="JSON lines with text and optional subject and sender.")]) -> None:
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
) -> None:
    """Retrain from the shipped examples plus every staff correction; save a new version the workers pick up."""
    from ops.runtime import Runtime  # noqa: PLC0415
    from workers.training import ModelStore, correction_examples, desk_people, evaluate_examples, shipped_examples, split  # noqa: PLC0415
    from workers.training import train as fit  # noqa: PLC0415

    settings = _settings()
    desk = load_desk(settings)
    store = ModelStore(settings.resolved_model_dir)
    train_split, heldout = split(shipped_examples())
    examples = [*train_split, *heldout] if all_examples else train_split
    with Runtime(settings) as runtime:
        corrections = correction_examples(runtime.engine, desk_people(desk))  # a stranger's correction never trains the model
    with console.status(f"training on {len(examples)} examples and {len(corrections)} corrections"):
        models = fit(desk, examples, corrections, version=store.next_version())
    if not all_examples:
        results = evaluate_examples(EnquiryClassifier(desk, settings.triage_confidence, models), heldout)
        models.metrics = {name: ev.to_dict() for name, ev in results.items()}
    path = store.save(models)
    console.print(f"saved model [bold]{models.version}[/bold] → {path}")
    console.print(f"trained on {models.examples} examples and {models.corrections} corrections")
    for name, metrics in models.metrics.items():
        console.print(f"held-out {name}: macro-F1 {metrics['macro_f1']:.3f}, accuracy {metrics['accuracy']:.3f}")
