"""Reading your own data's sources for a run: the training data, and a separate test source (`test:`)
read as the training data were: the same label columns, kinds and classes, the same table encoding,
and a cell the training data's reader took for an unknown label (a `?` among class ids) unknown here
too, not a class the training data lack. Transfer and multi-task runs both take their test split from
it; without one, transfer holds out a stratified fraction of the target."""
from __future__ import annotations

import inspect
import logging
from dataclasses import replace
from typing import Any, Collection

import numpy as np

from ..data.sources import SOURCES, SourceData, read_source
from ..data.sources.base import label_text
from ..data.sources.labels import regression_values
from ..data.sources.table import read_cells
from ..data.splits import stratified_indices
from ..errors import TaskshareError

log = logging.getLogger("taskshare")


def read_data(spec: dict[str, Any], image_size, where: str) -> SourceData:
    data = read_source(spec, where)
    if data.kind == "image" and data.encoding.get("size") is None:
        data.encoding["size"] = list(image_size)   # the model's own input size unless the source states one
    return data


def hold_out(data: SourceData, test_spec, fraction: float, seed: int, image_size, task: str,
             target_spec: dict[str, Any] | None = None):
    """The training and test parts of a transfer target: a separate test source read as the target
    was (`target_spec`), its rows without a known label left out, or a stratified `fraction` of `data`."""
    if test_spec is not None:
        test = read_test(data, test_spec, target_spec, image_size)
        known = test.known(task)
        if not known.any():
            raise TaskshareError(f"the test source {test.origin} has no known label for {task!r}; expected "
                                 f"labelled rows to score on")
        return data, test.select(np.flatnonzero(known))
    y = data.labels[task]
    train_idx, test_idx = stratified_indices(np.where(y >= 0, y, len(data.class_names[task])), fraction, seed)
    return data.select(train_idx), data.select(test_idx)


def read_test(train: SourceData, test_spec, train_spec: dict[str, Any] | None, image_size) -> SourceData:
    """A test source read as `train` was read from `train_spec`: its label columns (unless it names
    its own), their kinds, a table's encoding; labels re-indexed by the training classes."""
    spec = with_kinds(with_label_names(test_spec, train_spec), train)
    if train.kind == "table" and isinstance(spec, dict):   # scaled and one-hot encoded as the training table was
        spec = {**spec, "encoding": train.encoding}
    spec, regression = values_as_text(spec)
    test = values_as_numbers(read_data(spec, image_size, "test"), regression)
    # a kind stated on either source is the user's word on what a cell is; otherwise the training
    # data's reader decided, and it read a stray `?` among numbers as unknown
    stated = declared_kinds(train_spec) | declared_kinds(test_spec)
    return align_classes(test, train, [t for t in train.tasks if t not in stated])


def declared_kinds(spec) -> set[str]:
    """The label columns whose kind a source spec states (kind: ..., or labels: {column: kind})."""
    if not isinstance(spec, dict):
        return set()
    if isinstance(spec.get("labels"), dict):
        return set(spec["labels"])
    kind = spec.get("kind")
    if isinstance(kind, dict):
        return set(kind)
    if isinstance(kind, str):
        return set(spec.get("labels") or [spec.get("label") or "label"])
    return set()


def values_as_text(spec) -> tuple[Any, list[str]]:
    """The spec with its regression label columns read as text (class names), and those columns. The
    reader's rule for a regression column, a few stray `?` unknown and more of them a stop, decides
    whether a column is numbers; the training data have decided that, so in the test file a `?` is an
    unknown value however many rows hold one (values_as_numbers reads the text back)."""
    if not isinstance(spec, dict):
        return spec, []
    labels, kind = spec.get("labels"), spec.get("kind")
    if isinstance(labels, dict):
        regression = [n for n, k in labels.items() if k == "regression"]
        as_text = {n: "classification" if n in regression else k for n, k in labels.items()}
        return {**spec, "labels": as_text}, regression
    if isinstance(kind, str):
        kind = {n: kind for n in (labels or [spec.get("label") or "label"])}
    if not isinstance(kind, dict):
        return spec, []
    regression = [n for n, k in kind.items() if k == "regression"]
    return {**spec, "kind": {**kind, **{n: "classification" for n in regression}}}, regression


def values_as_numbers(test: SourceData, columns: Collection[str]) -> SourceData:
    """The regression label `columns` of `test`, read as text, as numbers again: a cell that is not a
    number (`?`) is unknown and left out of scoring, with a warning naming the file, token and count,
    as a classification column's stray is (align_classes)."""
    if not any(c in test.labels for c in columns):
        return test        # a column the file lacks is named by align_classes
    labels, names, kinds = dict(test.labels), dict(test.class_names), dict(test.label_kinds)
    for task in [c for c in columns if c in test.labels]:
        text, y = test.class_names[task], test.labels[task]
        stray = read_cells(text)[1]
        tokens = [t for t, s in zip(text, stray) if s]
        if tokens:
            count = int(np.isin(y, np.flatnonzero(stray)).sum())
            log.warning("%s: %d test row(s) hold %s in label column %r, whose training values are numbers (kind: "
                        "regression): read as unknown labels; left out of scoring", test.origin, count, tokens[:5],
                        task)
        cells = [None if i < 0 or stray[i] else text[i] for i in y]
        labels[task], names[task], kinds[task] = regression_values(cells, task, test.origin), [], "regression"
    return replace(test, labels=labels, class_names=names, label_kinds=kinds)


def _reader(spec) -> Any:
    keys = [k for k in spec if k in SOURCES] if isinstance(spec, dict) else []
    return SOURCES.get(keys[0]) if len(keys) == 1 else None   # else read_source names the problem


def with_label_names(test_spec, train_spec):
    """A test source that names no label column reads the training source's: the test split holds
    the columns the model was trained to predict, so a file lacking one is named, not read as `label`."""
    reader = _reader(test_spec)
    if reader is None or not isinstance(train_spec, dict) or "label" in test_spec or "labels" in test_spec:
        return test_spec
    takes = inspect.signature(reader).parameters
    names = train_spec.get("labels")
    names = list(names) if names is not None else ([train_spec["label"]] if train_spec.get("label") else None)
    if names is None:
        return test_spec
    if "labels" in takes:
        return {**test_spec, "labels": names}
    return {**test_spec, "label": names[0]} if "label" in takes and len(names) == 1 else test_spec


def with_kinds(test_spec: dict[str, Any], train: SourceData) -> dict[str, Any]:
    """A test source reads its labels as the training data's kinds unless it states its own: read on
    its own, a test file of class ids the target declared kind: classification stopped as a measurement."""
    reader = _reader(test_spec)
    if reader is None or "kind" in test_spec or isinstance(test_spec.get("labels"), dict):
        return test_spec
    if "kind" not in inspect.signature(reader).parameters:
        return test_spec    # image folders and npz have no kinds
    names = test_spec.get("labels") or [test_spec.get("label") or "label"]
    kinds = {n: train.label_kinds[n] for n in names if n in train.label_kinds}
    return {**test_spec, "kind": kinds} if kinds else test_spec


def align_classes(test: SourceData, train: SourceData, strays_unknown: Collection[str] = ()) -> SourceData:
    """Test labels re-indexed by the training classes (a test folder may lack a class, or order
    them differently); a class the training data do not have stops the run, named. In the tasks of
    `strays_unknown`, a test class that is not a number where every training class is one is an
    unknown label, as the training data's reader read such a cell (with a warning naming the count)."""
    labels = {}
    for task, names in train.class_names.items():
        if task not in test.labels:
            raise TaskshareError(f"the test source {test.origin} has no labels for task {task!r}; it has {test.tasks}")
        if test.kind_of(task) != train.kind_of(task):
            raise TaskshareError(f"the test source {test.origin} reads label {task!r} as {test.kind_of(task)}, the "
                                 f"training data ({train.origin}) as {train.kind_of(task)}; expected the same kind")
        if train.kind_of(task) == "regression":
            labels[task] = test.labels[task]
            continue
        classes, unknown = test.class_names[task], []
        if task in strays_unknown and names and all(_is_number(n) for n in names):
            classes = [label_text(float(c)) if _is_number(c) else c for c in classes]   # "1.0" beside a `?` is 1
            unknown = _stray_classes(test, task, classes, names)
        extra = [c for c in classes if c not in names and c not in unknown]
        if extra:
            raise TaskshareError(f"the test source {test.origin} has classes {extra} that the training data "
                                 f"({train.origin}) do not have; expected some of {names}")
        lookup = np.array([names.index(c) if c in names else -1 for c in classes] + [-1], np.int64)
        labels[task] = lookup[test.labels[task]]   # -1 (unknown) indexes the appended -1
    return SourceData(test.kind, test.inputs, labels, train.class_names, train.encoding if test.kind == "image"
                      else test.encoding, test.origin, test.skipped, train.label_kinds, test.raw)


def _stray_classes(test: SourceData, task: str, classes: list[str], names: list[str]) -> list[str]:
    """The test's `classes` of `task` that are not numbers, where every training class (`names`) is:
    cells such as `?`, which the training data's reader reads as unknown in a column of numbers.
    However many the test rows hold, such a cell can never be one of the training classes, so their
    share does not make it a class (the reader's 5% rule decides between numbers and text, and the
    training data have decided that); the warning gives the count."""
    stray = [c for c in classes if c not in names and not _is_number(c)]
    if stray:
        ids = [i for i, c in enumerate(classes) if c in stray]
        count = int(np.isin(test.labels[task], ids).sum())
        log.warning("%s: %d test row(s) hold %s in label column %r, whose training classes are numbers: read as "
                    "unknown labels, as the training data's reader reads them; left out of scoring", test.origin,
                    count, stray[:5], task)
    return stray


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
