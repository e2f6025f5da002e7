"""Classifiers: pure functions and objects — text and metadata in, labels with confidence and reasons out.

Nothing here performs I/O on the hot path: models and configuration are loaded
by the caller and passed in.
"""
