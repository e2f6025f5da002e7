"""Benchmark: which documentation ranker signposts better — BM25 or the offline LSA "embedding"?

    python bench/signposting.py [--docs config/docs] [--set classifiers/data/docs-relevance.jsonl] [--repeat 5] [--json]

Builds an index of the documentation with each ranker, then searches every
enquiry of the relevance set (subject + body, with the enquiry's language, as
the worker does) and reports, per ranker:

- MRR (first relevant page, over the top 10), recall@3 and nDCG@3 (binary gains)
  on the enquiries that have relevant pages;
- precision and recall of "possible documentation gap" at the ranker's
  threshold, where the enquiries with ``"relevant": []`` are the positives, and
  the threshold that would maximise F1 on this set, and the F1 of a
  leave-one-out choice of threshold (each enquiry judged with the threshold
  that is best on all the others: the honest figure, as the shipped
  thresholds were chosen on this set);
- queries per second (one core, one query at a time).

The winner has the higher MRR when a paired bootstrap over the enquiries puts
the difference beyond noise; otherwise the better gap F1 decides (a wrong
"gap" or a missed one matters as much as rank 1 vs 2), then speed. It should be
``DEFAULT_RANKER`` in classifiers/docs/rankers.py.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifiers.docs.index import DocsIndex  # noqa: E402
from classifiers.docs.rankers import DEFAULT_RANKER, RANKERS  # noqa: E402
from workers.intake.docs_index import build_index  # noqa: E402


@dataclass(frozen=True)
class Enquiry:
    text: str
    language: str | None
    relevant: frozenset[str]


@dataclass(frozen=True)
class Scores:
    ranker: str
    mrr: float
    recall_at_3: float
    ndcg_at_3: float
    gap_threshold: float
    gap_precision: float
    gap_recall: float
    best_gap_threshold: float
    best_gap_f1: float
    loo_gap_f1: float
    queries_per_second: float
    answerable: int
    gaps: int
    reciprocal_ranks: tuple[float, ...]

    @property
    def gap_f1(self) -> float:
        p, r = self.gap_precision, self.gap_recall
        return 2 * p * r / (p + r) if p + r else 0.0


def read_set(path: Path) -> list[Enquiry]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Enquiry(f"{r.get('subject', '')}\n{r['text']}", r.get("language"), frozenset(r["relevant"])) for r in rows]


def _ndcg_at_3(ranked: list[str], relevant: frozenset[str]) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, url in enumerate(ranked[:3]) if url in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(3, len(relevant))))
    return dcg / ideal


def _precision_recall(predicted: list[bool], expected: list[bool]) -> tuple[float, float]:
    hits = sum(p and e for p, e in zip(predicted, expected))
    return hits / max(sum(predicted), 1), hits / max(sum(expected), 1)


def _best_threshold(top_scores: list[float], expected: list[bool]) -> tuple[float, float]:
    """The gap threshold with the highest F1 on this set: (threshold, F1)."""
    best = (0.0, 0.0)
    for threshold in sorted({round(s + 0.005, 3) for s in top_scores}):
        p, r = _precision_recall([s < threshold for s in top_scores], expected)
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        if f1 > best[1]:
            best = (threshold, f1)
    return best


def _leave_one_out_f1(top_scores: list[float], expected: list[bool]) -> float:
    """Gap F1 when each enquiry is judged with the threshold chosen on all the others: an honest estimate."""
    predicted = []
    for i, score in enumerate(top_scores):
        threshold, _ = _best_threshold(top_scores[:i] + top_scores[i + 1:], expected[:i] + expected[i + 1:])
        predicted.append(score < threshold)
    p, r = _precision_recall(predicted, expected)
    return 2 * p * r / (p + r) if p + r else 0.0


def measure(index: DocsIndex, enquiries: list[Enquiry], repeat: int) -> Scores:
    answerable = [e for e in enquiries if e.relevant]
    ranks: list[float] = []
    recall = ndcg = 0.0
    for e in answerable:
        ranked = [s.url for s in index.search(e.text, k=10, language=e.language)]
        ranks.append(next((1.0 / (i + 1) for i, url in enumerate(ranked) if url in e.relevant), 0.0))
        recall += len(e.relevant & set(ranked[:3])) / len(e.relevant)
        ndcg += _ndcg_at_3(ranked, e.relevant)
    found = [index.search(e.text, k=3, language=e.language) for e in enquiries]
    expected = [not e.relevant for e in enquiries]
    precision, gap_recall = _precision_recall([index.is_gap(f) for f in found], expected)
    top = [f[0].score if f else 0.0 for f in found]
    best_threshold, best_f1 = _best_threshold(top, expected)
    started = time.perf_counter()
    for _ in range(repeat):
        for e in enquiries:
            index.search(e.text, k=3, language=e.language)
    qps = repeat * len(enquiries) / (time.perf_counter() - started)
    n = max(len(answerable), 1)
    return Scores(index.ranker.name, sum(ranks) / n, recall / n, ndcg / n, index.gap_score, precision, gap_recall,
                  best_threshold, best_f1, _leave_one_out_f1(top, expected), qps, len(answerable), len(enquiries) - len(answerable), tuple(ranks))


def mrr_difference(a: Scores, b: Scores, resamples: int = 2000) -> tuple[float, float, float]:
    """MRR(a) − MRR(b) with a 95% paired-bootstrap interval over the enquiries: (difference, low, high)."""
    diffs = np.array(a.reciprocal_ranks) - np.array(b.reciprocal_ranks)
    samples = np.random.default_rng(0).choice(diffs, size=(resamples, len(diffs))).mean(axis=1)
    return float(diffs.mean()), float(np.quantile(samples, 0.025)), float(np.quantile(samples, 0.975))


def choose(results: list[Scores]) -> tuple[Scores, str]:
    """The winner and why: higher MRR when the difference is beyond noise, else better gap F1, else speed."""
    a, b = sorted(results, key=lambda s: s.mrr, reverse=True)[:2]
    diff, low, high = mrr_difference(a, b)
    if low > 0:
        return a, f"MRR higher by {diff:.3f} (95% CI {low:.3f}…{high:.3f})"
    why = f"MRR difference {diff:+.3f} is within noise (95% CI {low:+.3f}…{high:+.3f}), so "
    if abs(a.gap_f1 - b.gap_f1) >= 0.05:
        best = max(a, b, key=lambda s: s.gap_f1)
        return best, why + f"the better gap detection decides (F1 {best.gap_f1:.2f} vs {min(a.gap_f1, b.gap_f1):.2f})"
    best = max(a, b, key=lambda s: s.queries_per_second)
    return best, why + "speed decides"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, default=ROOT / "config" / "docs", help="documentation folder or sitemap")
    parser.add_argument("--set", type=Path, default=ROOT / "classifiers" / "data" / "docs-relevance.jsonl", help="relevance set (JSON lines)")
    parser.add_argument("--repeat", type=int, default=5, help="passes over the set for timing")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    enquiries = read_set(args.set)
    results = []
    for name in RANKERS:
        started = time.perf_counter()
        index = build_index(args.docs, ranker=name)
        build_seconds = time.perf_counter() - started
        results.append((measure(index, enquiries, args.repeat), len(index.pages), build_seconds))
    winner, why = choose([r[0] for r in results])
    if args.json:
        rows = [{k: v for k, v in asdict(r[0]).items() if k != "reciprocal_ranks"} for r in results]
        print(json.dumps({"results": rows, "winner": winner.ranker, "why": why, "default": DEFAULT_RANKER}, indent=2))
        return
    _print(results, winner, why, DEFAULT_RANKER)


def _print(results: list[tuple[Scores, int, float]], winner: Scores, why: str, default: str) -> None:
    console = Console(width=None if sys.stdout.isatty() else 160)
    first = results[0][0]
    table = Table(title=f"Signposting: {first.answerable} answerable enquiries, {first.gaps} with no relevant page; "
                        f"{results[0][1]} pages", title_justify="left")
    for column in ("ranker", "MRR", "recall@3", "nDCG@3", "gap threshold", "gap precision", "gap recall", "gap F1",
                   "best threshold (F1)", "gap F1 (LOO)", "queries/s", "build s"):
        table.add_column(column, justify="left" if column == "ranker" else "right")
    for s, _pages, build_seconds in results:
        mark = " ✓" if s.ranker == winner.ranker else ""
        table.add_row(f"{s.ranker}{mark}", f"{s.mrr:.3f}", f"{s.recall_at_3:.3f}", f"{s.ndcg_at_3:.3f}", f"{s.gap_threshold:g}",
                      f"{s.gap_precision:.3f}", f"{s.gap_recall:.3f}", f"{s.gap_f1:.3f}", f"{s.best_gap_threshold:.3f} ({s.best_gap_f1:.2f})", f"{s.loo_gap_f1:.3f}",
                      f"{s.queries_per_second:,.0f}", f"{build_seconds:.2f}")
    console.print(table)
    console.print(f"winner: [bold]{winner.ranker}[/bold]: {why}")
    if winner.ranker != default:
        console.print(f"[yellow]classifiers/docs/rankers.py DEFAULT_RANKER is {default!r}: change it to {winner.ranker!r}[/yellow]")


if __name__ == "__main__":
    main()
