"""Training data, versioned models and evaluation — the I/O around the pure classifiers.

- Labelled examples ship in ``classifiers/data/*.jsonl``; a stable hash of each
  example puts one in five in the *held-out* split, which training never sees.
- Staff corrections in the database are training data too (the latest per
  ticket and field wins).
- ``ModelStore`` keeps every trained model in ``DATA_DIR/models`` as data only —
  ``classifier-<version>.npz`` (numpy arrays, loaded with pickle refused) beside
  ``classifier-<version>.json`` (metadata and the arrays' SHA-256) — so a file in
  that folder can never run code in a worker. Anything else there is ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import structlog
from sqlalchemy import Engine

import classifiers
from classifiers.enquiry_type import KeywordTypeClassifier
from classifiers.evaluation import Evaluation, evaluate
from classifiers.model import SELF_WRITTEN_WEIGHT, Example, TrainedModels, fit_type_model, models_from_data, models_to_data, superseded
from classifiers.errors import ModelFormatError
from classifiers.pipeline import EnquiryClassifier
from config.desk import DeskConfig
from workers.errors import DatasetError

DATA = Path(classifiers.__file__).resolve().parent / "data"
REAL_SET = DATA / "real" / "enquiries.jsonl"  # real enquiries, restated and labelled (see workers/intake/real_set.py)
HELDOUT_SHARE = 5  # one example in five is held out


def read_examples(path: Path, weight: float = 1.0) -> list[Example]:
    """JSON lines with ``text`` and optional ``subject``, ``sender``, ``type``, ``sector``, ``language``.

    Each example counts ``weight`` in training."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError("each line needs a JSON object with a string 'text'")
            examples.append(
                Example(
                    text=record["text"],
                    subject=str(record.get("subject") or ""),
                    sender=str(record.get("sender") or ""),
                    type=record.get("type"),
                    sector=record.get("sector"),
                    language=record.get("language"),
                    weight=weight,
                )
            )
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: {exc}") from exc
    return examples


@dataclass(frozen=True)
class RealEnquiry:
    id: str
    source: str
    project: str
    example: Example  # restated subject and text, adjudicated type and sector


def read_real_set(path: Path = REAL_SET) -> list[RealEnquiry]:
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            example = Example(text=record["text"], subject=record.get("subject") or "", type=record["type"], sector=record["sector"],
                              language=record.get("language"))
            found.append(RealEnquiry(str(record["id"]), str(record["source"]), str(record["project"]), example))
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{path}:{number}: {exc}") from exc
    return found


@functools.cache
def real_examples() -> tuple[Example, ...]:
    """The real development set as training examples (empty where the file is absent)."""
    return tuple(r.example for r in read_real_set()) if REAL_SET.exists() else ()


@functools.cache
def shipped_examples() -> tuple[Example, ...]:
    """The self-written examples; in training each counts ``SELF_WRITTEN_WEIGHT`` of a real enquiry."""
    return tuple(e for path in sorted(DATA.glob("examples-*.jsonl")) for e in read_examples(path, SELF_WRITTEN_WEIGHT))


def is_heldout(example: Example) -> bool:
    digest = hashlib.sha1(f"{example.subject}\n{example.text}".encode()).digest()
    return digest[0] % HELDOUT_SHARE == 0


def split(examples: Iterable[Example]) -> tuple[list[Example], list[Example]]:
    train, heldout = [], []
    for example in examples:
        (heldout if is_heldout(example) else train).append(example)
    return train, heldout


def correction_examples(engine: Engine, staff: frozenset[str] | None = None) -> list[Example]:
    """Staff corrections as examples; with ``staff``, only corrections by those people (never a stranger's)."""
    from storage.corrections import training_corrections  # noqa: PLC0415

    with engine.connect() as connection:
        rows = training_corrections(connection)
    merged: dict[int, dict] = {}
    for row in rows:
        if staff is not None and row["corrected_by"] not in staff:
            continue
        entry = merged.setdefault(row["ticket_id"], {"subject": row["subject"], "text": row["text"], "sender": row["sender_address"]})
        entry[row["field"]] = row["new_value"]
    return [Example(text=e["text"], subject=e["subject"], sender=e["sender"], type=e.get("type"), sector=e.get("sector")) for e in merged.values()]


def train(desk: DeskConfig, examples: Sequence[Example], corrections: Sequence[Example] = (), version: str = "") -> TrainedModels:
    """Fit the type model on ``examples`` plus ``corrections`` (corrections count double)."""
    rules = KeywordTypeClassifier(desk.taxonomy)
    data = [*examples, *corrections, *corrections]
    return TrainedModels(
        version=version or datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S"),
        type_model=fit_type_model(data, rules, list(desk.taxonomy.types)),
        trained_at=datetime.now(timezone.utc).isoformat(),
        examples=len(examples),
        corrections=len(corrections),
    )


def evaluate_examples(classifier: EnquiryClassifier, examples: Sequence[Example]) -> dict[str, Evaluation]:
    """Type and sector evaluations over the examples that carry each label."""
    results: dict[str, Evaluation] = {}
    typed = [e for e in examples if e.type]
    if typed:
        results["type"] = evaluate([e.type for e in typed], [classifier.classify_type(e.subject, e.text).value for e in typed])
    with_sector = [e for e in examples if e.sector]
    if with_sector:
        predicted = [classifier.sectors.classify(e.sender, e.text).label.value for e in with_sector]
        results["sector"] = evaluate([e.sector for e in with_sector], predicted)
    return results


class ModelStore:
    """Versioned models in a folder, as data only (arrays + JSON with a checksum); the newest valid version wins."""

    PATTERN = re.compile(r"^classifier-(\d{4})-(\d{14})\.json$")
    MAX_BYTES = 512 * 1024 * 1024
    _last_loaded: ClassVar[tuple[tuple[object, ...], TrainedModels] | None] = None  # (its path and files' identity, it)

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def versions(self) -> list[Path]:
        """The manifests (``classifier-<version>.json``), oldest first."""
        if not self.folder.exists():
            return []
        return sorted(p for p in self.folder.iterdir() if self.PATTERN.match(p.name))

    def next_version(self) -> str:
        existing = self.versions()
        number = int(self.PATTERN.match(existing[-1].name).group(1)) + 1 if existing else 1  # type: ignore[union-attr]
        return f"{number:04d}-{datetime.now(timezone.utc).strftime('%Y%m%d%H%M%S')}"

    def newest_version(self) -> str | None:
        versions = self.versions()
        return versions[-1].name.removeprefix("classifier-").removesuffix(".json") if versions else None

    def save(self, models: TrainedModels) -> Path:
        """Write the arrays, then the manifest naming their checksum (so a half-written model is never read)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        arrays, meta = models_to_data(models)
        data_path = self.folder / f"classifier-{models.version}.npz"
        _atomic_write(self.folder, data_path, lambda handle: np.savez_compressed(handle, **arrays))
        meta["sha256"] = hashlib.sha256(data_path.read_bytes()).hexdigest()
        path = self.folder / f"classifier-{models.version}.json"
        _atomic_write(self.folder, path, lambda handle: handle.write(json.dumps(meta).encode("utf-8")))
        return path

    def load(self, manifest: Path) -> TrainedModels:
        """One version; raises ModelFormatError unless it is our data format with a matching checksum.

        The version this process loaded last is kept with its files' identity (device, inode, size, modification
        time): read again unchanged — by a worker forked from the process that loaded it (``workers.ops.preload``)
        — it is not read, checked and rebuilt again (0.12–0.17 s), and its arrays stay shared with the parent's."""
        data_path = manifest.with_suffix(".npz")
        try:
            stamp = (str(manifest), *_identity(manifest), *_identity(data_path))
        except OSError as exc:
            raise ModelFormatError(f"{manifest.name}: {exc}") from exc
        last = ModelStore._last_loaded
        if last is not None and last[0] == stamp:
            return last[1]
        models = self._read(manifest, data_path)
        ModelStore._last_loaded = (stamp, models)
        return models

    def _read(self, manifest: Path, data_path: Path) -> TrainedModels:
        try:
            meta = json.loads(manifest.read_text(encoding="utf-8"))
            if data_path.stat().st_size > self.MAX_BYTES:
                raise ModelFormatError(f"{data_path.name} is larger than {self.MAX_BYTES} bytes")
            raw = data_path.read_bytes()
        except (OSError, ValueError) as exc:
            raise ModelFormatError(f"{manifest.name}: {exc}") from exc
        if not isinstance(meta, dict) or hashlib.sha256(raw).hexdigest() != meta.get("sha256"):
            raise ModelFormatError(f"{manifest.name}: the arrays do not match the recorded checksum")
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files if not superseded(name, npz.files)}  # inflated when read
        except (OSError, ValueError) as exc:  # ValueError: an object array, which would need pickle
            raise ModelFormatError(f"{data_path.name}: {exc}") from exc
        return models_from_data(arrays, meta)

    def newest(self) -> TrainedModels | None:
        """The newest version that loads; a damaged or foreign file is skipped with a warning, never executed."""
        for manifest in reversed(self.versions()):
            try:
                return self.load(manifest)
            except ModelFormatError as exc:
                structlog.get_logger("helpdesk.training").warning("model skipped", file=manifest.name, reason=str(exc))
        return None


def _identity(path: Path) -> tuple[int, ...]:
    found = path.stat()
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns


def _atomic_write(folder: Path, path: Path, write: "Callable[[Any], object]") -> None:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def desk_people(desk: DeskConfig) -> frozenset[str]:
    return frozenset({m.key for t in desk.teams.teams.values() for m in t.members} | {p.key for p in desk.teams.staff})


def load_or_train(desk: DeskConfig, store: ModelStore, engine: Engine | None = None) -> TrainedModels:
    """The newest saved model; on a desk without one, train the first from the shipped examples and save it."""
    newest = store.newest()
    if newest is not None:
        return newest
    corrections = correction_examples(engine, desk_people(desk)) if engine is not None else []
    version = store.next_version()
    if corrections:
        models = train(desk, [*split(shipped_examples())[0], *real_examples()], corrections, version=version)
    else:
        models = dataclasses.replace(_first_model(desk.taxonomy.model_dump_json()), version=version)
    store.save(models)
    return models


_first_models: dict[str, TrainedModels] = {}
_first_lock = threading.Lock()


def _first_model(taxonomy_json: str) -> TrainedModels:
    """The model trained on the shipped train split for this taxonomy, trained once per process."""
    from config.desk import Taxonomy  # noqa: PLC0415

    with _first_lock:
        if taxonomy_json not in _first_models:
            taxonomy = Taxonomy.model_validate_json(taxonomy_json)
            rules = KeywordTypeClassifier(taxonomy)
            examples = [*split(shipped_examples())[0], *real_examples()]
            _first_models[taxonomy_json] = TrainedModels(
                version="shipped",
                type_model=fit_type_model(examples, rules, list(taxonomy.types)),
                trained_at=datetime.now(timezone.utc).isoformat(),
                examples=len(examples),
                corrections=0,
            )
        return _first_models[taxonomy_json]
