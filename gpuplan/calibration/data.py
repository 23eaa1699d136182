"""The user's texts and labels: a CSV or JSON Lines file (read by `gpuplan.dataset`), a folder saved by
`datasets`, or a Hub dataset. Only this module imports `datasets`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpuplan.dataset import LabeledTexts, is_dataset_file_name, labeled_texts, load_labeled_file
from gpuplan.errors import GpuplanError, one_line


def load_labeled_texts(dataset: str | Path, text_column: str = "text", label_column: str = "label", *,
                       online: bool = False) -> LabeledTexts:
    spec = str(dataset)
    path = Path(spec).expanduser()
    if path.is_file() or is_dataset_file_name(path) or (not path.is_dir() and spec.startswith((".", "/", "~"))):
        return load_labeled_file(path, text_column, label_column)
    rows, columns = _read_saved_dataset(path) if path.is_dir() else _read_hub_dataset(spec, online)
    return labeled_texts(rows, columns, spec, text_column, label_column)


def _read_saved_dataset(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    if not any((path / f).is_file() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
        raise GpuplanError(f"dataset folder {path} was not saved by `datasets` (no dataset_info.json or "
                           "dataset_dict.json); pass a CSV or JSON Lines file, or a folder from save_to_disk")
    try:
        import datasets

        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # corrupt arrow files, version mismatch: all mean "can't read this folder"
        raise GpuplanError(f"cannot read dataset folder {path}: {one_line(e)[:200]}") from None
    return _rows_of(ds, str(path))


def _read_hub_dataset(name: str, online: bool) -> tuple[list[dict[str, Any]], list[str]]:
    if not online:
        raise GpuplanError(
            f"dataset {name!r} is not a file or folder here, and the Hugging Face Hub can't be reached to fetch it; "
            "pass a CSV or JSON Lines file, or a folder saved with datasets' save_to_disk"
        )
    try:
        import datasets

        ds = datasets.load_dataset(name, split="train")
    except Exception as e:  # unknown name, gated, no train split
        raise GpuplanError(f"cannot load Hub dataset {name!r}: {one_line(e)[:200]}") from None
    return _rows_of(ds, name)


def _rows_of(ds: Any, where: str) -> tuple[list[dict[str, Any]], list[str]]:
    if isinstance(ds.column_names, dict):  # a DatasetDict: calibrate on its train split
        splits = list(ds.keys())
        ds = ds["train"] if "train" in splits else ds[splits[0]]
    label_names: dict[str, list[str]] = {}
    for col, feature in ds.features.items():
        if type(feature).__name__ == "ClassLabel":
            label_names[col] = list(feature.names)
    rows = ds.to_list()
    # A ClassLabel column stores indices; keep its names so messages and results use them.
    for col, names in label_names.items():
        for r in rows:
            if isinstance(r.get(col), int) and 0 <= r[col] < len(names):
                r[col] = names[r[col]]
    return rows, list(ds.column_names)
