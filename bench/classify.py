"""Benchmark: classification speed (type + sector + language, one core) and quality (model vs keyword baseline).

    python bench/classify.py [--repeat 20]

Trains on the shipped train split, then classifies the held-out split one
message at a time, as the worker does, and prints messages/s (target ≥ 2,000)
and macro-F1 of the model beside the keyword baseline. It also times the candidate type model that
reads a static sentence embedding beside the n-grams (``classifiers/embedding_model.py``, not yet
in the worker), with sector and language, as the worker would run it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifiers.embedding_model import WeightedExample, fit_embedding_type_model  # noqa: E402
from classifiers.embeddings import StaticEmbedder, embedding_text, load_wordllama  # noqa: E402
from classifiers.enquiry_type import Tokens  # noqa: E402
from classifiers.model import Example  # noqa: E402
from classifiers.pipeline import EnquiryClassifier  # noqa: E402
from intake.mime import parse_email  # noqa: E402
from config.desk import load_desk  # noqa: E402
from config.settings import load_settings  # noqa: E402
from workers.intake.training import evaluate_examples, shipped_examples, split, train  # noqa: E402


def demo_examples() -> list[Example]:
    """The demo's enquiries with their labels from its manifest: an evaluation set from another hand."""
    samples = Path(__file__).resolve().parents[1] / "ops" / "samples" / "enquiries"
    manifest = {f["file"]: f for f in json.loads((samples / "expected.json").read_text())["files"]}
    examples = []
    for path in sorted(samples.glob("*.eml")):
        entry = manifest[path.name]
        if entry["kind"] != "enquiry":
            continue
        message = parse_email(path.read_bytes(), received_at=datetime.now(timezone.utc), source="", raw_ref=None).message
        examples.append(Example(text=message.text, subject=message.subject, sender=message.sender.address,
                                type=entry["type"], sector=entry["sector"]))
    return examples


def with_embeddings(classifier: EnquiryClassifier, embedder: StaticEmbedder, examples: list[Example], rule_types: list[str]):  # noqa: ANN201
    """A function classifying one message as the worker would with the embedding model: type, sector, language."""
    types = classifier.types
    model = fit_embedding_type_model([WeightedExample(e) for e in examples], types, rule_types, embedder)

    def classify(subject: str, text: str, sender: str) -> tuple[str, str, str]:
        tokens = Tokens.of(subject, text)
        best = model.predict_one(tokens, types.scores_tokens(tokens), embedder.embed_one(embedding_text(subject, text)), top=2)[0][0]
        return best, classifier.sectors.classify(sender, text).label.value, classifier.languages.classify(f"{subject}\n{text}").value
    return classify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="passes over the held-out split for timing")
    args = parser.parse_args()
    console = Console()
    desk = load_desk(load_settings(environ={}))
    train_split, heldout = split(shipped_examples())
    started = time.perf_counter()
    models = train(desk, train_split, version="bench")
    train_seconds = time.perf_counter() - started
    model = EnquiryClassifier(desk, 0.45, models)
    baseline = EnquiryClassifier(desk, 0.45)

    quality = Table(title=f"Held-out split: {len(heldout)} examples (trained on {len(train_split)} in {train_seconds:.1f} s)", title_justify="left")
    for column in ("label", "model macro-F1", "baseline macro-F1", "model accuracy", "baseline accuracy"):
        quality.add_column(column, justify="left" if column == "label" else "right")
    for name, examples in (("held-out", heldout), ("demo sample", demo_examples())):
        ours, theirs = evaluate_examples(model, examples), evaluate_examples(baseline, examples)
        for label in ours:
            quality.add_row(f"{label} ({name}, n={ours[label].count})", f"{ours[label].macro_f1:.3f}", f"{theirs[label].macro_f1:.3f}",
                            f"{ours[label].accuracy:.3f}", f"{theirs[label].accuracy:.3f}")
    console.print(quality)
    console.print("demo sample: the 35 enquiries of `helpdesk demo`, written by another author than the training examples")

    speed = Table(title="One message at a time, one thread", title_justify="left")
    for column in ("classifier", "messages/s", "µs/message"):
        speed.add_column(column, justify="left" if column == "classifier" else "right")
    embedder = load_wordllama()
    candidates = (("model (type + sector + language)", model.classify),
                  ("model + embeddings, candidate (type + sector + language)", with_embeddings(model, embedder, train_split, list(desk.taxonomy.types))),
                  ("embedding alone (wordllama, one message)", lambda subject, text, sender: embedder.embed_one(embedding_text(subject, text))),
                  ("keyword baseline (type + sector + language)", baseline.classify))
    for name, classify in candidates:
        for e in heldout:  # warm caches
            classify(subject=e.subject, text=e.text, sender=e.sender)
        started = time.perf_counter()
        for _ in range(args.repeat):
            for e in heldout:
                classify(subject=e.subject, text=e.text, sender=e.sender)
        elapsed = time.perf_counter() - started
        n = args.repeat * len(heldout)
        speed.add_row(name, f"{n / elapsed:,.0f}", f"{elapsed / n * 1e6:.0f}")
    console.print(speed)
    console.print("target: ≥ 2,000 messages/s for type + sector + language on one core")


if __name__ == "__main__":
    main()
