"""Reading CSV files: a training ``Dataset`` from a catalog CSV, feature rows for prediction.

Every file needs a header row of unique, non-empty column names; every feature
cell must be a finite number (missing values are not supported). Errors are
``CSVError``s naming the file, the line and the column, so a bad cell is found
without opening the file.
"""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from service.store import Dataset
from service.training.limits import LimitError, Limits, check_labels

TASKS = ("classification", "regression")
_INT_LABEL = re.compile(r"[+-]?[0-9]+")


class CSVError(ValueError):
    """A CSV file that cannot be read as a dataset; the message names the file, line and column."""


def _open_csv(path: Path) -> Any:
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise CSVError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CSVError(f"{path}: is a directory, not a CSV file") from None
    except OSError as exc:
        raise CSVError(f"{path}: cannot read: {exc.strerror}") from None


def _header(path: Path, reader: Any) -> list[str]:
    try:
        header = [c.strip() for c in next(reader)]
    except StopIteration:
        raise CSVError(f"{path}: the file is empty; a header row is required") from None
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except csv.Error as exc:
        raise CSVError(f"{path}: line 1: not a readable CSV row: {exc}") from None
    seen: set[str] = set()
    for column in header:
        if not column:
            raise CSVError(f"{path}: line 1: the header has an empty column name")
        if column in seen:
            raise CSVError(f"{path}: line 1: column {column!r} appears twice in the header")
        seen.add(column)
    return header


def _rows(path: Path, reader: Any, width: int) -> Any:
    """(line number, cells) of every non-blank data row, each ``width`` cells wide."""
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != width:
                raise CSVError(f"{path}: line {reader.line_num}: {len(row)} cells, but the header has {width} columns")
            yield reader.line_num, row
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except csv.Error as exc:
        raise CSVError(f"{path}: line {reader.line_num}: not a readable CSV row: {exc}") from None


def _not_utf8(path: Path) -> CSVError:
    """The error for a file that is not UTF-8, naming the line of its first bad byte.

    The decoder reads ahead in blocks, so the csv reader's own line count is
    behind when decoding fails; the bytes say where the fault really is.
    """
    raw = path.read_bytes()
    try:
        raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return CSVError(f"{path}: line {line}: byte 0x{raw[exc.start]:02x} is not UTF-8 text; save the file as UTF-8")
    return CSVError(f"{path}: not UTF-8 text; save the file as UTF-8")


def _number(path: Path, line: int, column: str, cell: str) -> float:
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        what = "an empty cell (missing values are not supported)" if not text else f"{text!r} is not a number"
        raise CSVError(f"{path}: line {line}, column {column!r}: {what}") from None
    if not math.isfinite(value):
        raise CSVError(f"{path}: line {line}, column {column!r}: {text!r} is not a finite number")
    return value


def read_csv_header(path: str | os.PathLike[str]) -> list[str]:
    """The column names of a CSV file's header row."""
    path = Path(path)
    with _open_csv(path) as f:
        return _header(path, csv.reader(f))


def read_csv_dataset(path: str | os.PathLike[str], target: str, task: str) -> Dataset:
    """A CSV with a header row as a ``Dataset``: every column but ``target`` is a numeric feature.

    Classification labels become ints when every label is an integer literal
    that fits int64 and no two labels name the same int (so ``predict``
    answers 3, not "3"), else strings; regression targets are float64.
    """
    path = Path(path)
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    with _open_csv(path) as f:
        reader = csv.reader(f)
        header = _header(path, reader)
        if target not in header:
            raise CSVError(f"{path}: target column {target!r} is not in the header (columns: {', '.join(header)})")
        t = header.index(target)
        features = [c for i, c in enumerate(header) if i != t]
        if not features:
            raise CSVError(f"{path}: no feature columns besides the target {target!r}")
        X: list[list[float]] = []
        labels: list[Any] = []  # str cells for classification, floats for regression
        for line, row in _rows(path, reader, len(header)):
            X.append([_number(path, line, header[i], cell) for i, cell in enumerate(row) if i != t])
            label = row[t].strip()
            if task == "regression":
                labels.append(_number(path, line, target, label))
            elif not label:
                raise CSVError(f"{path}: line {line}, column {target!r}: an empty label")
            else:
                labels.append(label)
    if not X:
        raise CSVError(f"{path}: no data rows after the header")
    if task == "classification":
        try:
            check_labels(Limits.from_settings(), labels, where=f"{path}: column {target!r}: ")
        except LimitError as exc:
            raise CSVError(str(exc)) from None
    if task == "regression":
        y = np.asarray(labels, dtype=np.float64)
    elif (ints := _int_labels(labels)) is not None:
        y = np.asarray(ints, dtype=np.int64)
    else:
        y = np.asarray(labels, dtype=str)
    return Dataset(np.asarray(X, dtype=np.float64), y, features)


def _int_labels(labels: list[str]) -> list[int] | None:
    """The labels as ints when each is an int64 literal and no two distinct labels ("7", "07") become one int."""
    if not all(_INT_LABEL.fullmatch(label) for label in labels):
        return None
    ints = [int(label) for label in labels]
    if not all(-(2**63) <= i < 2**63 for i in ints) or len(set(ints)) != len(set(labels)):
        return None
    return ints


def _some(names: list[str], limit: int = 8) -> str:
    """A name list short enough for a one-line message."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names) - limit} more)"


def _looks_numeric(cells: list[str]) -> bool:
    try:
        [float(c) for c in cells]
    except ValueError:
        return False
    return True


def read_csv_features(path: str | os.PathLike[str], feature_names: list[str] | None, n_features: int) -> np.ndarray:
    """Feature rows of a CSV for prediction, as float64 of shape (n_rows, n_features).

    When the header names every one of ``feature_names`` the columns are taken
    by name (any order; extra columns such as the target are ignored), else
    the file must have exactly ``n_features`` columns, taken by position.
    """
    path = Path(path)
    with _open_csv(path) as f:
        reader = csv.reader(f)
        header = _header(path, reader)
        names = list(feature_names or [])
        if names and all(n in header for n in names):
            columns = [header.index(n) for n in names]
        elif len(header) == n_features:
            if _looks_numeric(header):
                raise CSVError(f"{path}: line 1 looks like data; the first row must be a header row of column names")
            columns = list(range(n_features))
        else:
            wanted = f"the columns {_some(names)} (by name, in any order) or " if names else ""
            raise CSVError(
                f"{path}: the model needs {wanted}{n_features} columns by position, "
                f"but the header has {len(header)} columns: {_some(header)}"
            )
        X = [
            [_number(path, line, header[i], row[i]) for i in columns] for line, row in _rows(path, reader, len(header))
        ]
    if not X:
        raise CSVError(f"{path}: no data rows after the header")
    return np.asarray(X, dtype=np.float64)
