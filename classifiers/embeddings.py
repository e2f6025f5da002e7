"""Static sentence embeddings: the mean of a text's token vectors, from a model shipped inside a PyPI package.

``StaticEmbedder`` is pure: it holds a tokenizer and a token-vector matrix and turns texts into unit-length
vectors — the same text always gives the same vector, and nothing is fitted. ``load_wordllama`` builds one
from the files the ``wordllama`` wheel ships (``wordllama/weights/l2_supercat_256.safetensors``, 32,000 × 256,
and ``wordllama/tokenizers/l2_supercat_tokenizer_config.json``, the Llama 2 BPE tokenizer). It reads those
files only — it never imports ``wordllama`` (whose import configures the root logger and whose ``load()`` may
try to download) and never opens a connection. Without the package it raises ``EmbeddingsUnavailable``.

The Llama 2 tokenizer splits any Latin-script language into sub-words, so Spanish, French and Portuguese get
vectors too, though the vectors were trained mostly on English. One message of ~600 characters costs about
0.2 ms (tokenising most of it).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from classifiers.errors import EmbeddingsUnavailable

WORDLLAMA_WEIGHTS = "weights/l2_supercat_256.safetensors"
WORDLLAMA_TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"
WORDLLAMA_TENSOR = "embedding.weight"
MAX_CHARS = 4000  # of the text; as long a text scored no worse than 800 characters on the real set


def embedding_text(subject: str, text: str) -> str:
    """What is embedded: the subject twice (it states the topic, as for the n-gram model), then the text."""
    return f"{subject}\n{subject}\n{text[:MAX_CHARS]}"


class StaticEmbedder:
    """Unit-length mean of token vectors; thread-safe (the tokenizer is only read)."""

    def __init__(self, tokenizer: object, vectors: np.ndarray, name: str) -> None:
        self._tokenizer = tokenizer  # a ``tokenizers.Tokenizer`` without padding or truncation
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.name = name

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def embed_one(self, text: str) -> np.ndarray:
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        return self._pool(ids)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32; an empty text is the zero vector."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, encoding in enumerate(self._tokenizer.encode_batch(list(texts), add_special_tokens=False)):
            out[row] = self._pool(encoding.ids)
        return out

    def _pool(self, ids: list[int]) -> np.ndarray:
        if not ids:
            return np.zeros(self.dim, dtype=np.float32)
        mean = self.vectors[np.clip(ids, 0, len(self.vectors) - 1)].mean(axis=0)
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm else mean


def package_folder(package: str) -> Path:
    """Where an installed package's files are, found without importing (so without running) it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingsUnavailable(f"the package {package!r} is not installed (pip install {package})")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def load_wordllama() -> StaticEmbedder:
    """The embedder of the files shipped in the ``wordllama`` wheel, loaded once per process (~0.15 s, 33 MB)."""
    from safetensors.numpy import load_file  # noqa: PLC0415 - only callers that embed pay for these imports
    from tokenizers import Tokenizer  # noqa: PLC0415

    folder = package_folder("wordllama")
    try:
        tokenizer = Tokenizer.from_str((folder / WORDLLAMA_TOKENIZER).read_text(encoding="utf-8"))
        vectors = load_file(str(folder / WORDLLAMA_WEIGHTS))[WORDLLAMA_TENSOR]
    except Exception as exc:  # noqa: BLE001 - tokenizers and safetensors raise bare Exception subclasses on damaged files
        raise EmbeddingsUnavailable(f"cannot read the embedding model shipped in {folder}: {exc}") from exc
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return StaticEmbedder(tokenizer, vectors, "wordllama/l2_supercat_256")
