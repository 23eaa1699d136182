"""The workload: which BERT, how much data, how many epochs, batch, sequence length and precisions.

Built from flags, from a YAML file (`--workload FILE`), or both (flags win).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from gpuplan.errors import GpuplanError, did_you_mean, one_line

Precision = Literal["fp32", "mixed"]
PRECISION_CHOICES = ("fp32", "mixed", "both")


class ModelArch(BaseModel):
    """The shape of a BERT-family encoder: everything the performance model needs from `config.json`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    vocab_size: PositiveInt
    hidden_size: PositiveInt
    num_hidden_layers: PositiveInt
    num_attention_heads: PositiveInt
    intermediate_size: PositiveInt
    max_position_embeddings: PositiveInt = 512
    type_vocab_size: PositiveInt = 2
    num_labels: PositiveInt = 2
    source: Literal["builtin", "file", "hub"] = "builtin"
    path: str | None = Field(None, description="the config.json or model folder it came from")


def same_architecture(a: ModelArch, b: ModelArch) -> bool:
    """Same layers and sizes, whatever the name, the origin or the number of labels (the head is negligible)."""
    ignore = {"name", "source", "path", "num_labels"}
    return a.model_dump(exclude=ignore) == b.model_dump(exclude=ignore)


def _bert(name: str, vocab: int, hidden: int, layers: int, heads: int) -> ModelArch:
    return ModelArch(
        name=name, vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=4 * hidden,
    )


# The published configs of Google's BERT checkpoints on the Hugging Face Hub.
BUILTIN_MODELS: dict[str, ModelArch] = {
    m.name: m
    for m in (
        _bert("bert-base-uncased", 30522, 768, 12, 12),
        _bert("bert-base-cased", 28996, 768, 12, 12),
        _bert("bert-large-uncased", 30522, 1024, 24, 16),
        _bert("bert-large-cased", 28996, 1024, 24, 16),
    )
}
DEFAULT_MODEL = "bert-base-uncased"


def arch_from_config(config: dict[str, Any], name: str, source: str, path: str | None) -> ModelArch:
    model_type = config.get("model_type", "bert")
    if model_type not in ("bert", "roberta", "electra", "xlm-roberta", "camembert"):
        raise GpuplanError(f"{name}: model_type {model_type!r} is not a BERT-family encoder; gpuplan plans BERT models")
    labels = config.get("id2label")
    fields = {**config, "name": name, "source": source, "path": path}
    if isinstance(labels, dict) and labels:
        fields["num_labels"] = len(labels)
    try:
        return ModelArch.model_validate(fields)
    except ValidationError as e:
        err = e.errors()[0]
        raise GpuplanError(f"{name}: config field {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def resolve_model(model: str) -> ModelArch:
    """A built-in name, a path to a `config.json`, or a model folder containing one."""
    if model in BUILTIN_MODELS:
        return BUILTIN_MODELS[model]
    path = Path(model).expanduser()
    if path.is_dir():
        path = path / "config.json"
        if not path.is_file():
            raise GpuplanError(f"model folder {model} has no config.json; pass a BERT model folder or its config.json")
    if path.is_file():
        try:
            config = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise GpuplanError(f"model config {path} is not valid JSON: {one_line(e)}") from None
        if not isinstance(config, dict):
            raise GpuplanError(f"model config {path} is not a JSON object")
        return arch_from_config(config, model, "file", str(path))
    if "/" in model and not model.startswith((".", "/", "~")):
        return _hub_arch(model)
    raise GpuplanError(
        f"unknown model {model!r}.{did_you_mean(model, BUILTIN_MODELS)} Use one of {', '.join(BUILTIN_MODELS)}, "
        "a path to a BERT config.json or model folder, or a Hub id such as google-bert/bert-base-uncased"
    )


def _hub_arch(repo_id: str) -> ModelArch:
    """Fetch only config.json of a Hub model (kilobytes); offline, say how to work around it."""
    from gpuplan.calibration.hub import hub_online

    if not hub_online():  # offline, the Hub client retries for most of a minute before it gives up
        raise GpuplanError(
            f"the Hugging Face Hub is not reachable to fetch config.json of {repo_id!r}; "
            "download the model folder and pass its path, or use a built-in name"
        )
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(repo_id, "config.json")
    except Exception as e:  # offline, unknown repo, gated: all leave us without a config
        raise GpuplanError(
            f"could not fetch config.json of {repo_id!r} from the Hugging Face Hub ({type(e).__name__}); "
            "download the model folder and pass its path, or use a built-in name"
        ) from None
    return arch_from_config(json.loads(Path(path).read_text()), repo_id, "hub", None)


class DatasetStats(BaseModel):
    """What a calibration learned about the user's texts (token lengths, host tokenizer speed)."""

    model_config = ConfigDict(extra="ignore")

    num_examples: int
    num_labels: int | None = None
    token_len_p50: float
    token_len_p90: float
    token_len_max: int
    truncated_share: float = Field(description="share of texts longer than seq_len")
    mean_padded_len: float | None = Field(
        None, description="mean length of batches padded to their longest text (dynamic padding)"
    )
    tokenize_examples_per_second: float | None = None


class Workload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = DEFAULT_MODEL
    arch: ModelArch
    num_examples: PositiveInt = 25_000
    epochs: float = Field(2, gt=0)
    batch_size: PositiveInt = 32
    seq_len: PositiveInt = 128
    precisions: list[Precision] = ["fp32", "mixed"]
    dataset: DatasetStats | None = None

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.num_examples // self.batch_size)


# The keys a workload YAML file may hold, and the type each must have.
WORKLOAD_FILE_KEYS: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "num_examples": int,
    "epochs": (int, float),
    "batch_size": int,
    "seq_len": int,
    "precision": str,
}


def read_workload_file(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise GpuplanError(f"workload file {path} does not exist; check the path")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise GpuplanError(f"workload file {path} is not valid YAML: {one_line(e)}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise GpuplanError(f"workload file {path} must be a mapping such as `model: bert-base-uncased`")
    for key, value in doc.items():
        if key not in WORKLOAD_FILE_KEYS:
            raise GpuplanError(
                f"workload file {path}: unknown field {key!r}.{did_you_mean(str(key), WORKLOAD_FILE_KEYS)} "
                f"Fields: {', '.join(WORKLOAD_FILE_KEYS)}"
            )
        expected = WORKLOAD_FILE_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, expected):
            kind = expected.__name__ if isinstance(expected, type) else "number"
            raise GpuplanError(f"workload file {path}: {key} must be a {kind}, got {value!r}")
    return doc


def build_workload(
    *,
    workload_file: Path | None = None,
    model: str | None = None,
    num_examples: int | None = None,
    epochs: float | None = None,
    batch_size: int | None = None,
    seq_len: int | None = None,
    precision: str | None = None,
) -> Workload:
    """Defaults, then the file, then the flags that were given."""
    values: dict[str, Any] = read_workload_file(Path(workload_file)) if workload_file else {}
    flags = dict(model=model, num_examples=num_examples, epochs=epochs, batch_size=batch_size, seq_len=seq_len,
                 precision=precision)
    values.update({k: v for k, v in flags.items() if v is not None})
    for key in ("num_examples", "epochs", "batch_size", "seq_len"):
        if key in values and values[key] <= 0:
            raise GpuplanError(f"{key.replace('_', '-')} must be greater than 0, got {values[key]}")
    prec = str(values.pop("precision", "both")).lower()
    if prec not in PRECISION_CHOICES:
        raise GpuplanError(f"unknown precision {prec!r}; use fp32, mixed or both")
    arch = resolve_model(values.get("model", DEFAULT_MODEL))
    seq = values.get("seq_len", 128)
    if seq > arch.max_position_embeddings:
        raise GpuplanError(
            f"seq-len {seq} is longer than {arch.name} can take ({arch.max_position_embeddings} positions); "
            f"use --seq-len {arch.max_position_embeddings} or less"
        )
    precisions = ["fp32", "mixed"] if prec == "both" else [prec]
    try:
        return Workload(arch=arch, precisions=precisions, **values)
    except ValidationError as e:
        raise GpuplanError(f"workload: {one_line(e.errors()[0]['msg'])}") from None
