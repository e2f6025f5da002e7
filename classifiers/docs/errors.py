"""Errors of documentation signposting.

    DocsError                 anything the documentation index or its loader raises on purpose
    ├── DocsSourceError       the source does not exist, is not a folder / sitemap, or gave no page to index
    └── DocsIndexError        a saved index cannot be decoded (bad JSON, wrong format or version)

A single unreadable page is not an error: it is listed in ``DocsIndex.skipped``.
"""

from __future__ import annotations


class DocsError(Exception):
    """Base of every error raised on purpose by the documentation index and its loader."""


class DocsSourceError(DocsError):
    """The source does not exist, is neither a folder nor a readable sitemap, or gave no page to index."""


class DocsIndexError(DocsError):
    """A saved index cannot be decoded: bad JSON, another format, or an unknown version."""
