"""Errors of the classifiers package.

    ModelFormatError             a saved model file is not one this code can read (a ValueError)
    EmbeddingsUnavailable        the sentence-embedding encoder is not installed or cannot load
"""

from __future__ import annotations


class EmbeddingsUnavailable(RuntimeError):
    """The package that ships the embedding model is not installed, or its files are missing or damaged."""


class ModelFormatError(ValueError):
    """Model data that is not a classifier of this format (or is damaged)."""
