"""Acknowledgements, canned replies and signatures (``config/templates.yaml``), per language.

Texts use ``string.Template`` placeholders (``${ticket}``): substitution only —
no attribute access, no expressions — so a template can never reach into
objects, and a value (an enquirer's name) is never read as a template. Unknown
placeholders are start-up errors; a missing language falls back to the
desk's fallback language.
"""

from __future__ import annotations

from collections.abc import Mapping
from string import Template
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


VARIABLES = frozenset({"enquirer_name", "ticket", "subject", "team", "agent_name", "signature", "suggestions"})
Localised = dict[str, str]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Acknowledgement(_Frozen):
    subject: Localised = Field(default_factory=dict)
    body: Localised


class Canned(_Frozen):
    title: str
    text: Localised


class Templates(_Frozen):
    version: int
    fallback_language: str = "en"
    desk_name: str = "Helpdesk"
    signatures: dict[str, Localised] = Field(default_factory=dict)  # team key (or "default") → language → text
    acknowledgements: dict[str, Acknowledgement] = Field(default_factory=dict)  # channel → texts
    suggestions_heading: Localised = Field(default_factory=dict)
    canned: dict[str, Canned] = Field(default_factory=dict)

    def pick(self, texts: Mapping[str, str], language: str | None) -> str | None:
        return texts.get(language or "") or texts.get(self.fallback_language) or next(iter(texts.values()), None)

    def signature(self, team: str | None, language: str | None) -> str:
        texts = self.signatures.get(team or "") or self.signatures.get("default") or {}
        return self.pick(texts, language) or self.desk_name

    def render(self, text: str, values: Mapping[str, Any]) -> str:
        return Template(text).safe_substitute({k: "" if v is None else str(v) for k, v in values.items()}).strip() + "\n"

    def problems(self, languages: tuple[str, ...], channels: tuple[str, ...]) -> list[str]:
        found = []
        texts: list[tuple[str, str]] = []
        for channel, ack in self.acknowledgements.items():
            if channel not in channels:
                found.append(f"templates: acknowledgement for unknown channel {channel!r}")
            texts += [(f"acknowledgements.{channel}.subject.{lang}", t) for lang, t in ack.subject.items()]
            texts += [(f"acknowledgements.{channel}.body.{lang}", t) for lang, t in ack.body.items()]
        for name, canned in self.canned.items():
            texts += [(f"canned.{name}.text.{lang}", t) for lang, t in canned.text.items()]
        for where, text in texts:
            language = where.rsplit(".", 1)[1]
            if language not in languages:
                found.append(f"templates: {where}: {language!r} is not a configured language")
            template = Template(text)
            if not template.is_valid():
                found.append(f"templates: {where}: malformed placeholder (use $name or ${{name}}; $$ for a dollar)")
                continue
            unknown = set(template.get_identifiers()) - VARIABLES
            if unknown:
                found.append(f"templates: {where}: unknown variable(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(VARIABLES))})")
        return found
