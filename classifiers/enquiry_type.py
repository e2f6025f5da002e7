"""Enquiry type from the cues in the taxonomy: the rule layer (and the keyword baseline).

Each type's cues, in every configured language, are compiled into one regex.
A distinct cue found in the body scores 1, in the subject 2 (a subject states
the topic); repeats add a little. Confidence is the winner's share of all
scores, damped so that a single weak cue cannot look certain.
"""

from __future__ import annotations

from dataclasses import dataclass

from classifiers.result import Label
from classifiers.text import fold, phrase_pattern
from config.desk import Taxonomy

SUBJECT_WEIGHT = 2.0
REPEAT_WEIGHT = 0.25
MAX_REPEAT_BONUS = 1.0
DAMPING = 1.0
MAX_CHARS = 6000


@dataclass(frozen=True)
class _TypeCues:
    name: str
    pattern: object  # re.Pattern[str]


class KeywordTypeClassifier:
    """Scores every enquiry type by the taxonomy's cues; explains the winner."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.default_type = taxonomy.default_type
        self._cues: list[_TypeCues] = []
        for name, etype in taxonomy.types.items():
            phrases = [fold(cue) for cues in etype.cues.values() for cue in cues]
            pattern = phrase_pattern(phrases)
            if pattern is not None:
                self._cues.append(_TypeCues(name, pattern))

    def scores(self, subject: str, text: str) -> dict[str, tuple[float, list[str]]]:
        """Score and matched cues per type (types without a match are left out)."""
        folded_subject = fold(subject)
        folded_text = fold(text[:MAX_CHARS])
        found: dict[str, tuple[float, list[str]]] = {}
        for cues in self._cues:
            in_subject = set(cues.pattern.findall(folded_subject))
            body_hits = cues.pattern.findall(folded_text)
            in_body = set(body_hits) - in_subject
            if not in_subject and not in_body:
                continue
            repeats = min(MAX_REPEAT_BONUS, REPEAT_WEIGHT * (len(body_hits) - len(set(body_hits))))
            score = SUBJECT_WEIGHT * len(in_subject) + len(in_body) + repeats
            found[cues.name] = (score, sorted(in_subject) + sorted(in_body))
        return found

    def classify(self, subject: str, text: str) -> Label:
        scores = self.scores(subject, text)
        if not scores:
            return Label(self.default_type, 0.2, ("no cue of any enquiry type matched",))
        ranked = sorted(scores.items(), key=lambda item: item[1][0], reverse=True)
        best, (best_score, cues) = ranked[0]
        total = sum(score for score, _ in scores.values())
        confidence = best_score / (total + DAMPING)
        reasons = [f"cues for {best}: " + ", ".join(repr(c) for c in cues[:6])]
        if len(ranked) > 1:
            runner, (runner_score, _) = ranked[1]
            reasons.append(f"runner-up {runner} scored {runner_score:.1f} vs {best_score:.1f}")
        return Label(best, round(confidence, 3), tuple(reasons))
