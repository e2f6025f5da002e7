from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from classifiers.errors import ModelFormatError
from config.desk import load_desk
from config.settings import load_settings
from workers.intake.watchers import ModelWatcher
from workers.intake.training import ModelStore, is_heldout, load_or_train, shipped_examples, split


def test_the_heldout_split_is_stable_and_about_a_fifth() -> None:
    train, heldout = split(shipped_examples())
    assert 0.15 < len(heldout) / (len(train) + len(heldout)) < 0.25
    assert all(is_heldout(e) for e in heldout)
    assert not any(is_heldout(e) for e in train)


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
    assert first.version.startswith("0001-")
    assert len(store.versions()) == 1
    watcher = ModelWatcher(store, desk, engine=None)  # type: ignore[arg-type]
    seen = []
    watcher.on_change = seen.append
    watcher.CHECK_SECONDS = 0
    newer = dataclasses.replace(first, version=store.next_version())
    store.save(newer)
    watcher.refresh()
    assert newer.version.startswith("0002-")
    assert [m.version for m in seen] == [newer.version]
    assert watcher.current.version == newer.version
    watcher.refresh()
    assert len(seen) == 1  # nothing newer: no swap


def test_a_model_file_can_carry_no_code(tmp_path: Path, model_dir: Path) -> None:
    """Anyone able to write the models folder must not run code in the workers: pickles and object arrays are refused."""
    import io  # noqa: PLC0415
    import json  # noqa: PLC0415
    import pickle  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    desk = load_desk(load_settings(environ={}))
    store = ModelStore(tmp_path)
    good = load_or_train(desk, store)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):  # noqa: ANN204 - what a malicious pickle does on load
            return (marker.write_text, ("code ran",))

    # Given a newer version whose arrays hold a pickled object, with a checksum that matches
    version = store.next_version()
    buffer = io.BytesIO()
    np.savez(buffer, **{"type.weights": np.array([Exploit()], dtype=object)})
    (tmp_path / f"classifier-{version}.npz").write_bytes(buffer.getvalue())
    import hashlib  # noqa: PLC0415

    manifest = {"format": "helpdesk-classifier/1", "version": version, "sha256": hashlib.sha256(buffer.getvalue()).hexdigest()}
    (tmp_path / f"classifier-{version}.json").write_text(json.dumps(manifest))
    # and an old-style pickle beside it
    (tmp_path / "classifier-9998-20990101000000.joblib").write_bytes(pickle.dumps(Exploit()))
    # When the workers look for the newest model
    newest = store.newest()
    # Then no code ran and the last good model is used
    assert not marker.exists()
    assert newest is not None
    assert newest.version == good.version


def test_a_tampered_model_is_refused_by_its_checksum(tmp_path: Path, model_dir: Path) -> None:
    desk = load_desk(load_settings(environ={}))
    store = ModelStore(tmp_path)
    first = load_or_train(desk, store)
    second = dataclasses.replace(first, version=store.next_version())
    store.save(second)
    data = tmp_path / f"classifier-{second.version}.npz"
    data.write_bytes(data.read_bytes()[:-10] + b"0123456789")
    assert store.newest().version == first.version


def test_a_version_read_again_unchanged_is_the_one_loaded_and_a_changed_file_is_read_and_checked_again(tmp_path: Path, model_dir: Path) -> None:
    desk = load_desk(load_settings(environ={}))
    store = ModelStore(tmp_path)
    load_or_train(desk, store)
    manifest = store.versions()[-1]
    # Given a version this process loaded
    loaded = store.load(manifest)
    # When it is read again unchanged (as by a worker forked from this process): the same arrays, not a copy
    assert store.load(manifest) is loaded
    # and when its arrays are replaced on disk, it is read again, and its checksum refuses the change
    data = manifest.with_suffix(".npz")
    tampered = tmp_path / "tampered.npz"
    tampered.write_bytes(data.read_bytes()[:-10] + b"0123456789")
    tampered.replace(data)
    with pytest.raises(ModelFormatError):
        store.load(manifest)
