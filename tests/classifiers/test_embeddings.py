"""Static sentence embeddings from the files a PyPI package ships: offline, deterministic, and the model that reads them."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from classifiers.embedding_model import WeightedExample, fit_embedding_type_model, fit_weighted_softmax
from classifiers.embeddings import StaticEmbedder, embedding_text, load_wordllama, package_folder
from classifiers.errors import EmbeddingsUnavailable
from classifiers.enquiry_type import KeywordTypeClassifier, Tokens
from classifiers.model import Example
from config.desk import load_desk
from config.settings import load_settings


@pytest.fixture(scope="module")
def embedder() -> StaticEmbedder:
    return load_wordllama()


def test_given_no_network_then_the_shipped_model_still_loads_and_embeds(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the embedding loader tried the network: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    load_wordllama.cache_clear()

    loaded = load_wordllama()
    vectors = loaded.embed(["Where is the codelist for tender status?", "¿Dónde está la lista de códigos?"])

    assert loaded.name == "wordllama/l2_supercat_256"
    assert vectors.shape == (2, 256)
    assert vectors.dtype == np.float32


def test_the_same_text_always_gives_the_same_unit_vector(embedder: StaticEmbedder) -> None:
    texts = ["Validator rejects our release package", "Comment publier nos données ?", ""]

    first, second = embedder.embed(texts), embedder.embed(texts)

    assert np.array_equal(first, second)
    assert np.array_equal(first[0], embedder.embed_one(texts[0]))
    assert np.allclose(np.linalg.norm(first[:2], axis=1), 1.0, atol=1e-5)
    assert not first[2].any()  # an empty text is the zero vector
    assert not np.allclose(first[0], first[1])


def test_texts_alike_in_meaning_are_closer_than_texts_about_other_things(embedder: StaticEmbedder) -> None:
    error, same, other = embedder.embed(["the validator shows an error for my file", "validation error when checking my data file",
                                         "can you run a training workshop for our team"])

    assert error @ same > error @ other


def test_given_the_package_is_missing_then_the_error_names_it() -> None:
    with pytest.raises(EmbeddingsUnavailable, match="not installed"):
        package_folder("no_such_embedding_package_for_tests")


def test_what_is_embedded_is_the_subject_twice_then_the_text() -> None:
    assert embedding_text("Codelist", "Which codes?") == "Codelist\nCodelist\nWhich codes?"


EXAMPLES = [
    ("Validator error", "The validator rejects our file with a schema error on line 3.", "data_quality"),
    ("Errors in our data", "Our published file has missing dates and wrong amounts, can you review it?", "data_quality"),
    ("Review of draft data", "Please check our draft release for errors before we publish.", "data_quality"),
    ("Workshop request", "Could you run a training workshop for our procurement staff?", "training"),
    ("Webinar", "Is there a webinar or training session we can attend next month?", "training"),
    ("Presentation", "We would like a presentation and training for our team on the standard.", "training"),
]


def test_the_model_with_embeddings_learns_types_and_ranks_every_class(embedder: StaticEmbedder) -> None:
    rules = KeywordTypeClassifier(load_desk(load_settings(environ={})).taxonomy)
    examples = [WeightedExample(Example(text=t, subject=s, type=y)) for s, t, y in EXAMPLES]
    rule_types = ["data_quality", "training"]

    model = fit_embedding_type_model(examples, rules, rule_types, embedder)
    subject, text = "Training", "Can your team give a training session to our staff?"
    tokens = Tokens.of(subject, text)
    ranked = model.predict_one(tokens, rules.scores_tokens(tokens), embedder.embed_one(embedding_text(subject, text)))

    assert model.head.weights.shape == (model.features.size + len(rule_types) + embedder.dim, 2)
    assert ranked[0][0] == "training"
    assert sum(p for _, p in ranked) == pytest.approx(1.0, abs=1e-5)


def test_an_example_weighed_almost_nothing_hardly_moves_the_model() -> None:
    from scipy import sparse  # noqa: PLC0415

    x = sparse.csr_matrix(np.array([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0], [0, 1.0], [1.0, 0]]))
    labels = ["a", "a", "b", "b", "b", "b"]  # the last one contradicts the first two

    heavy = fit_weighted_softmax(x, labels, np.array([1, 1, 1, 1, 1, 1.0]), c=10)
    light = fit_weighted_softmax(x, labels, np.array([1, 1, 1, 1, 1, 1e-4]), c=10)

    p_heavy = heavy.proba(sparse.csr_matrix(np.array([[1.0, 0]])))[0, heavy.classes.index("a")]
    p_light = light.proba(sparse.csr_matrix(np.array([[1.0, 0]])))[0, light.classes.index("a")]
    assert p_light > p_heavy
