"""Enquiry type from the cues in the taxonomy: the rule layer (and the keyword baseline).

Every type's cues, in every configured language, go into one phrase index
scanned once per message. A distinct cue found in the body scores 1, in the
subject 2 (a subject states the topic); repeats add a little. Confidence is
the winner's share of all scores, damped so that one weak cue cannot look
certain.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from classifiers.result import Label
from classifiers.text import PhraseIndex, words
from config.desk import Taxonomy

SUBJECT_WEIGHT = 2.0
REPEAT_WEIGHT = 0.25
MAX_REPEAT_BONUS = 1.0
DAMPING = 1.0
MAX_CHARS = 4000


@dataclass(frozen=True)
class Tokens:
    """A message tokenised once, for the rules and the model alike."""

    subject: list[str]
    text: list[str]

    @classmethod
    def of(cls, subject: str, text: str) -> "Tokens":
        return cls(words(subject), words(text[:MAX_CHARS]))


class KeywordTypeClassifier:
    """Scores every enquiry type by the taxonomy's cues; explains the winner."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.default_type = taxonomy.default_type
        phrases: dict[str, set[str]] = defaultdict(set)
        for name, etype in taxonomy.types.items():
            for cues in etype.cues.values():
                for cue in cues:
                    phrases[cue].add(name)
        self.index = PhraseIndex(phrases)

    def scores(self, subject: str, text: str) -> dict[str, tuple[float, list[str]]]:
        """Score and matched cues per type (types without a match are left out)."""
        return self.scores_tokens(Tokens.of(subject, text))

    def scores_tokens(self, tokens: Tokens) -> dict[str, tuple[float, list[str]]]:
        in_subject: dict[str, set[str]] = defaultdict(set)
        for phrase, types in self.index.find(tokens.subject):
            for etype in types:
                in_subject[etype].add(phrase)
        body_hits: dict[str, Counter[str]] = defaultdict(Counter)
        for phrase, types in self.index.find(tokens.text):
            for etype in types:
                body_hits[etype][phrase] += 1
        found: dict[str, tuple[float, list[str]]] = {}
        for etype in in_subject.keys() | body_hits.keys():
            subject_cues = in_subject.get(etype, set())
            hits = body_hits.get(etype, Counter())
            body_cues = set(hits) - subject_cues
            repeats = min(MAX_REPEAT_BONUS, REPEAT_WEIGHT * (sum(hits.values()) - len(hits)))
            score = SUBJECT_WEIGHT * len(subject_cues) + len(body_cues) + repeats
            found[etype] = (score, sorted(subject_cues) + sorted(body_cues))
        return found

    def classify(self, subject: str, text: str) -> Label:
        return self.decide(self.scores(subject, text))

    def decide(self, scores: dict[str, tuple[float, list[str]]]) -> Label:
        """The winning type of already computed ``scores``, explained."""
        if not scores:
            return Label(self.default_type, 0.2, ("no cue of any enquiry type matched",))
        ranked = sorted(scores.items(), key=lambda item: (-item[1][0], item[0]))
        best, (best_score, cues) = ranked[0]
        total = sum(score for score, _ in scores.values())
        confidence = best_score / (total + DAMPING)
        reasons = [f"cues for {best}: " + ", ".join(repr(c) for c in cues[:6])]
        if len(ranked) > 1:
            runner, (runner_score, _) = ranked[1]
            reasons.append(f"runner-up {runner} scored {runner_score:.1f} vs {best_score:.1f}")
        return Label(best, round(confidence, 3), tuple(reasons))
