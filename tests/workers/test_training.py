from __future__ import annotations

import dataclasses
from pathlib import Path

from config.desk import load_desk
from config.settings import load_settings
from workers.actors import ModelWatcher
from workers.training import ModelStore, is_heldout, load_or_train, shipped_examples, split


def test_the_heldout_split_is_stable_and_about_a_fifth() -> None:
    train, heldout = split(shipped_examples())
    assert 0.15 < len(heldout) / (len(train) + len(heldout)) < 0.25
    assert all(is_heldout(e) for e in heldout) and not any(is_heldout(e) for e in train)


def test_shipped_examples_cover_every_type_in_four_languages() -> None:
    desk = load_desk(load_settings(environ={}))
    examples = shipped_examples()
    for etype in desk.taxonomy.types:
        of_type = [e for e in examples if e.type == etype]
        assert len(of_type) >= 30, etype
        assert {e.language for e in of_type} == {"en", "es", "fr", "pt"}, etype


def test_store_versions_and_the_watcher_swaps_in_the_newest(tmp_path: Path, model_dir: Path) -> None:
    desk = load_desk(load_settings(environ={}))
    store = ModelStore(tmp_path)
    first = load_or_train(desk, store)  # no model yet: trains (or reuses this process's first model) and saves 0001
    assert first.version.startswith("0001-") and len(store.versions()) == 1
    watcher = ModelWatcher(store, desk, engine=None)  # type: ignore[arg-type]
    seen = []
    watcher.on_change = seen.append
    watcher.CHECK_SECONDS = 0
    newer = dataclasses.replace(first, version=store.next_version())
    store.save(newer)
    watcher.refresh()
    assert newer.version.startswith("0002-")
    assert [m.version for m in seen] == [newer.version] and watcher.current.version == newer.version
    watcher.refresh()
    assert len(seen) == 1  # nothing newer: no swap
