"""Sector from what enquirers say of themselves — and nothing from what they merely mention."""

from __future__ import annotations

import pytest

from classifiers.self_statement import self_statement


@pytest.mark.parametrize(
    ("text", "sector", "phrase"),
    [
        ("Hello, I work for the Ministry of Finance of Chile and we want to publish.", "government",
         "I work for the Ministry of Finance of Chile"),
        ("We are an NGO in Kenya monitoring contracts.", "civil_society", "We are an NGO in Kenya monitoring contracts"),
        ("I'm a PhD student at the University of Leeds.", "academia", "I'm a PhD student at the University of Leeds"),
        ("Our company builds e-procurement software.", "private_sector", "Our company builds e-procurement software"),
        ("Soy investigadora de la Universidad de Chile.", "academia", "Soy investigadora de la Universidad de Chile"),
        ("Je travaille au ministère des finances.", "government", "Je travaille au ministère des finances"),
        ("Trabalho na Prefeitura de São Paulo e queria saber.", "government", "Trabalho na Prefeitura de São Paulo"),
        ("I am a journalist covering procurement.", "media", "I am a journalist covering procurement"),
        ("**Name:** Jo\n**Affiliation:** Mississippi State University\n", "academia", "Affiliation:** Mississippi State University"),
        ("I'm a developer who uses transit data in some personal projects.", "individual", "personal projects"),
    ],
)
def test_given_a_statement_about_the_writer_then_its_sector_and_phrase(text: str, sector: str, phrase: str) -> None:
    found = self_statement(text)

    assert found is not None
    assert found.sector == sector
    assert found.phrase == phrase


@pytest.mark.parametrize(
    "text",
    [
        "The ministry published wrong totals, can you check?",
        "I'm trying to map data from the ministry of health.",
        "I'm new to this and not sure in which field the university grants go.",
        "How do I validate my JSON against the schema?",
        'The buyer is {"name": "Ministry of Health"} in our release.',
    ],
)
def test_given_an_organisation_only_mentioned_then_no_statement(text: str) -> None:
    assert self_statement(text) is None
