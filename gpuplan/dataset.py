"""The user's texts and labels from a CSV or JSON Lines file: pure Python, so the launch client can check a dataset
before anything is paid for without importing the training stack.

Everything a user can get wrong here (a missing file, a misspelt column, labels that are scores rather than
classes) ends as one GpuplanError that says how to fix it.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuplan.errors import GpuplanError, did_you_mean, one_line

TABULAR_SUFFIXES = {".csv": ",", ".tsv": "\t"}
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")


# A calibration needs a few thousand texts; past this many rows a file is sampled (seeded), and only counted.
MAX_ROWS = 200_000
SNIFF_BYTES = 64 * 1024
MAX_JSON_ARRAY_BYTES = 256 * 2**20  # a JSON array must be parsed whole; bigger ones belong in JSON Lines


@dataclass
class LabeledTexts:
    texts: list[str]
    labels: list[int]  # class indices 0..num_classes-1
    class_names: list[str]
    source: str  # for messages: the file, folder or Hub name
    total_examples: int = 0  # rows in the whole file; texts may be a sample of them

    def __post_init__(self) -> None:
        self.total_examples = max(self.total_examples, len(self.texts))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def is_dataset_file_name(path: Path) -> bool:
    """A name that can only mean a local file (so a missing one is an error, not a Hub dataset name)."""
    return path.suffix.lower() in (*TABULAR_SUFFIXES, *JSON_SUFFIXES)


def load_labeled_file(path: Path, text_column: str = "text", label_column: str = "label", *,
                      max_rows: int = MAX_ROWS) -> LabeledTexts:
    """A local CSV/TSV/JSON Lines file's texts and class labels (a seeded sample of MAX_ROWS in a bigger file)."""
    if path.is_dir():
        raise GpuplanError(f"dataset file {path} is a folder; give a CSV or JSON Lines file")
    if not path.is_file():
        raise GpuplanError(f"dataset file {path} does not exist; check the path")
    rows, columns, total = read_dataset_file(path, (text_column, label_column), max_rows)
    texts = labeled_texts(rows, columns, str(path), text_column, label_column)
    texts.total_examples = total
    return texts


def labeled_texts(rows: list[dict[str, Any]], columns: list[str], spec: str, text_column: str,
                  label_column: str) -> LabeledTexts:
    """Check the columns and labels of rows read from anywhere, and encode the labels as classes."""
    if not rows:
        raise GpuplanError(f"dataset {spec} has no rows; give a file with a header and at least one example")
    _check_columns(spec, columns, text_column, label_column)
    texts = []
    for i, row in enumerate(rows):
        text = row.get(text_column)
        if text is None or (isinstance(text, float) and math.isnan(text)):
            raise GpuplanError(f"dataset {spec}: example {i + 1} has no {text_column!r}; fill it or drop the row")
        texts.append(str(text))
    labels, names = encode_labels([row.get(label_column) for row in rows], f"dataset {spec}", label_column)
    return LabeledTexts(texts=texts, labels=labels, class_names=names, source=spec)


def encode_labels(values: list[Any], where: str, column: str) -> tuple[list[int], list[str]]:
    """Class indices for labels that are classes (ints, strings, bools, whole floats); an error for scores."""
    clean: list[Any] = []
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
            raise GpuplanError(f"{where}: example {i + 1} has no {column!r}; every example needs a class label")
        if isinstance(v, (list, dict)):
            raise GpuplanError(f"{where}: {column!r} holds {type(v).__name__}s; gpuplan calibrates single-label "
                               "classification (one class per example)")
        clean.append(_number_or_text(v))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in clean):
        fractional = [v for v in clean if isinstance(v, float) and not v.is_integer()]
        if fractional:
            raise GpuplanError(
                f"{where}: {column!r} holds fractional numbers such as {fractional[0]!r}, which are not classes; "
                "TFBertForSequenceClassification here is trained on class labels (0, 1, ... or names)"
            )
        clean = [int(v) for v in clean]
    keys = sorted(set(clean), key=lambda v: (isinstance(v, str), v if not isinstance(v, str) else 0, str(v)))
    if len(keys) < 2:
        raise GpuplanError(f"{where}: {column!r} has one class only ({keys[0]!r}); a classifier needs two or more")
    index = {k: i for i, k in enumerate(keys)}
    return [index[v] for v in clean], [str(k) for k in keys]


def _number_or_text(v: Any) -> Any:
    """CSV gives strings: '1' is the class 1, '0.5' the number 0.5, 'pos' the class 'pos'."""
    if isinstance(v, bool):
        return int(v)
    if not isinstance(v, str):
        return v
    s = v.strip()
    for conv in (int, float):
        try:
            return conv(s)
        except ValueError:
            pass
    return s


def _check_columns(spec: str, columns: list[str], text_column: str, label_column: str) -> None:
    for col, flag in ((text_column, "--text-column"), (label_column, "--label-column")):
        if col not in columns:
            raise GpuplanError(
                f"dataset {spec} has no column {col!r}.{did_you_mean(col, columns)} "
                f"Columns: {', '.join(columns)}; choose one with {flag}"
            )


def _sniff(path: Path) -> str:
    """The file's first bytes as text: binary and non-UTF-8 files are refused before anything else is read."""
    try:
        with path.open("rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError as e:
        raise GpuplanError(f"cannot read dataset file {path}: {one_line(e)}") from None
    if b"\x00" in head:
        raise GpuplanError(f"dataset file {path} is binary, not text; save it as UTF-8 CSV or JSON Lines")
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=len(head) < SNIFF_BYTES)
    except UnicodeDecodeError:
        raise GpuplanError(f"dataset file {path} is not UTF-8 text; save it as UTF-8 CSV or JSON Lines") from None
    if not text.strip():
        raise GpuplanError(f"dataset file {path} is empty; give a CSV with a header row or a JSON Lines file")
    return text


def read_dataset_file(path: Path, needed: tuple[str, ...] = (),
                      max_rows: int = MAX_ROWS) -> tuple[list[dict[str, Any]], list[str], int]:
    """(rows, columns, total rows) of a CSV/TSV/JSON Lines file, streamed: a file whose header lacks a `needed`
    column is refused after its first line, and a big one keeps a seeded sample of MAX_ROWS rows."""
    suffix = path.suffix.lower()
    head = _sniff(path)
    as_json = suffix in JSON_SUFFIXES or (suffix not in TABULAR_SUFFIXES and head.lstrip()[:1] in "[{")
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            if as_json and head.lstrip().startswith("["):
                if path.stat().st_size > MAX_JSON_ARRAY_BYTES:
                    raise GpuplanError(f"dataset file {path} is one JSON array of "
                                       f"{path.stat().st_size / 2**20:.0f} MiB; save it as JSON Lines (one object a "
                                       "line) so it can be streamed")
                rows = _parse_json(f.read(), path)
                return rows, _columns_of(rows), len(rows)
            if as_json:
                return _sample(_json_lines(f, path), path, needed, max_rows)
            reader = csv.DictReader(f, delimiter=TABULAR_SUFFIXES.get(suffix, ","))
            columns = list(reader.fieldnames or [])
            if needed and columns:
                _check_columns(str(path), columns, *needed)
            rows, _, total = _sample(reader, path, (), max_rows)
            return rows, columns, total
    except UnicodeDecodeError:
        raise GpuplanError(f"dataset file {path} is not UTF-8 text past its beginning; save it as UTF-8") from None
    except csv.Error as e:
        raise GpuplanError(f"dataset file {path} is not valid CSV: {one_line(e)}") from None
    except OSError as e:
        raise GpuplanError(f"cannot read dataset file {path}: {one_line(e)}") from None


def _columns_of(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows[:100]:
        columns += [k for k in row if k not in columns]
    return columns


def _json_lines(f: Any, path: Path) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise GpuplanError(f"dataset file {path} is not valid JSON Lines (line {number}): {one_line(e)}") from None
        if not isinstance(row, dict):
            raise GpuplanError(f"dataset file {path}: each line must be a JSON object such as "
                               '{"text": "great film", "label": 1}')
        yield row


def _sample(rows: Iterable[dict[str, Any]], path: Path, needed: tuple[str, ...],
            max_rows: int) -> tuple[list[dict[str, Any]], list[str], int]:
    """Every row up to max_rows, then a seeded reservoir sample; the columns are checked on the first 100 rows."""
    rng = random.Random(0)
    kept: list[dict[str, Any]] = []
    total = 0
    for row in rows:
        total += 1
        if total <= max_rows:
            kept.append(row)
            if total == 100 and needed:
                _check_columns(str(path), _columns_of(kept), *needed)
        else:
            j = rng.randrange(total)
            if j < max_rows:
                kept[j] = row
    return kept, _columns_of(kept), total


def _parse_json(raw: str, path: Path) -> list[dict[str, Any]]:
    text = raw.strip()
    try:
        if text.startswith("["):
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise GpuplanError(f"dataset file {path} is not valid JSON Lines: {one_line(e)}") from None
    if not all(isinstance(r, dict) for r in rows):
        raise GpuplanError(f"dataset file {path}: each line must be a JSON object such as "
                           '{"text": "great film", "label": 1}')
    return rows


