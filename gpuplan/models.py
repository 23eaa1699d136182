"""The BERT family: the shape of an encoder (`ModelArch`), the built-in names, and `config.json` of each model type.

The built-in names' configs are data (`gpuplan/data/models.json`, each with its source), read through the same
`arch_from_config` as a user's config.json or a Hub id, so one parser serves all three.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError, model_validator

from gpuplan.errors import GpuplanError, did_you_mean, one_line

# model_type of config.json -> the family whose analytic model applies. camembert is RoBERTa with its own vocab.
MODEL_FAMILIES = {
    "bert": "bert", "distilbert": "distilbert", "roberta": "roberta", "xlm-roberta": "roberta",
    "camembert": "roberta", "electra": "electra", "albert": "albert", "deberta-v2": "deberta-v2",
}
SUPPORTED_MODEL_TYPES = tuple(MODEL_FAMILIES)
# Where a type's transformers config class defaults differ from ModelArch's (BERT's) defaults.
TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "distilbert": {"type_vocab_size": 0},
    "roberta": {"pad_token_id": 1}, "xlm-roberta": {"pad_token_id": 1}, "camembert": {"pad_token_id": 1},
    "electra": {"embedding_size": 128},
    "albert": {"embedding_size": 128},
    "deberta-v2": {"type_vocab_size": 0},
}
# DistilBERT's config.json names its sizes differently.
DISTILBERT_KEYS = {"dim": "hidden_size", "n_layers": "num_hidden_layers", "n_heads": "num_attention_heads",
                   "hidden_dim": "intermediate_size"}
# Fields that only mean something for some types (elsewhere a config may carry them with no effect).
TYPE_FIELDS = {
    "embedding_size": ("electra", "albert", "deberta-v2"),
    "num_hidden_groups": ("albert",), "inner_group_num": ("albert",),
    "relative_attention": ("deberta-v2",), "pos_att_type": ("deberta-v2",), "position_buckets": ("deberta-v2",),
    "max_relative_positions": ("deberta-v2",), "share_att_key": ("deberta-v2",),
    "position_biased_input": ("deberta-v2",), "norm_rel_ebd": ("deberta-v2",), "conv_kernel_size": ("deberta-v2",),
}


class ModelArch(BaseModel):
    """The shape of a BERT-family encoder: everything the performance model needs from `config.json`.

    Field names are Hugging Face's; the defaults are BERT's, so measurements saved before other types existed load
    unchanged.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, protected_namespaces=())

    name: str
    # Upper bounds far past any real encoder (XLM-R: 250,002 tokens; BERT-large: 24 layers of 1,024): beyond them
    # a config is broken or not an encoder, and the analytic counts would overflow into nonsense.
    vocab_size: PositiveInt = Field(le=10_000_000)
    hidden_size: PositiveInt = Field(le=65_536)
    num_hidden_layers: PositiveInt = Field(le=1_000)
    num_attention_heads: PositiveInt = Field(le=1_024)
    intermediate_size: PositiveInt = Field(le=1_048_576)
    max_position_embeddings: PositiveInt = Field(512, le=1_048_576)
    type_vocab_size: NonNegativeInt = 2
    num_labels: PositiveInt = 2
    source: Literal["builtin", "file", "hub"] = "builtin"
    path: str | None = Field(None, description="the config.json or model folder it came from")
    model_type: str = "bert"
    pad_token_id: NonNegativeInt = 0
    embedding_size: PositiveInt | None = Field(None, description="ALBERT/ELECTRA/DeBERTa: the embeddings' width")
    num_hidden_groups: PositiveInt = 1  # ALBERT: layer groups stored, each reused by num_hidden_layers/groups layers
    inner_group_num: PositiveInt = 1  # ALBERT: layers per group
    relative_attention: bool = False  # DeBERTa: disentangled attention over relative positions
    pos_att_type: tuple[str, ...] = ()  # DeBERTa: "c2p" (content->position), "p2c" (position->content)
    position_buckets: int = -1  # DeBERTa: log buckets of relative distance; <= 0: max_relative_positions
    max_relative_positions: int = -1  # DeBERTa: < 1 means max_position_embeddings
    share_att_key: bool = False  # DeBERTa-v3: positions projected by the content Q/K weights
    position_biased_input: bool = True  # DeBERTa: absolute position embeddings added to the input
    norm_rel_ebd: str = "none"  # DeBERTa: "layer_norm" normalises the relative embeddings
    conv_kernel_size: NonNegativeInt = 0  # DeBERTa-v2 xlarge/xxlarge: a convolution beside the first layer

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> ModelArch:
        # transformers refuses to build such a model ("The hidden size is not a multiple of the number of attention
        # heads"): better said here than after minutes of calibration set-up.
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                             f"{self.num_attention_heads}, so transformers cannot build this model")
        return self

    @property
    def family(self) -> str:
        return MODEL_FAMILIES.get(self.model_type, "bert")

    @property
    def embed_dim(self) -> int:
        return self.embedding_size or self.hidden_size

    @property
    def position_offset(self) -> int:
        """RoBERTa-style position ids start after the padding id, so the first pad_token_id + 1 rows are unused."""
        return self.pad_token_id + 1 if self.family == "roberta" else 0

    @property
    def max_tokens(self) -> int:
        """The longest input, special tokens included."""
        return self.max_position_embeddings - self.position_offset

    @property
    def rel_span(self) -> int:
        """DeBERTa: relative distances attended each way (the relative embeddings have 2 * rel_span rows)."""
        if self.position_buckets > 0:
            return self.position_buckets
        return self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position_embeddings

    def position_limit(self) -> str:
        """Why max_tokens is what it is, for error messages."""
        if self.position_offset:
            return (f"{self.max_tokens} tokens: {self.max_position_embeddings} positions less the "
                    f"{self.position_offset} that {self.model_type}'s position ids skip")
        if self.family == "deberta-v2" and not self.position_biased_input:
            return (f"{self.max_tokens} tokens, its max_position_embeddings: relative positions run longer, but "
                    "out of what it was trained on; raise max_position_embeddings in a config.json to plan it anyway")
        return f"{self.max_position_embeddings} positions"


def same_architecture(a: ModelArch, b: ModelArch) -> bool:
    """Same layers and sizes, whatever the name, the origin or the number of labels (the head is negligible)."""
    ignore = {"name", "source", "path", "num_labels"}
    return a.model_dump(exclude=ignore) == b.model_dump(exclude=ignore)


def arch_from_config(config: dict[str, Any], name: str, source: str, path: str | None) -> ModelArch:
    """A ModelArch from the fields of a Hugging Face config.json, of any supported model type."""
    model_type = config.get("model_type") or "bert"
    if model_type not in MODEL_FAMILIES:
        raise GpuplanError(
            f"{name}: model_type {model_type!r} is not a BERT-family encoder gpuplan can plan; "
            f"supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    fields = {k: v for k, v in config.items() if v is not None and (k not in TYPE_FIELDS or model_type in TYPE_FIELDS[k])}
    if model_type == "distilbert":
        fields.update({ours: config[theirs] for theirs, ours in DISTILBERT_KEYS.items() if theirs in config})
        fields["type_vocab_size"] = 0  # DistilBERT has no token-type embeddings, whatever the config says
    for key, value in TYPE_DEFAULTS.get(model_type, {}).items():
        fields.setdefault(key, value)
    if isinstance(fields.get("pos_att_type"), str):  # config.json writes "p2c|c2p"
        fields["pos_att_type"] = [t.strip() for t in fields["pos_att_type"].lower().split("|") if t.strip()]
    fields.update(model_type=model_type, name=name, source=source, path=path)
    labels = config.get("id2label")
    if isinstance(labels, dict) and labels:
        fields["num_labels"] = len(labels)
    try:
        return ModelArch.model_validate(fields)
    except ValidationError as e:
        err = e.errors()[0]
        where = f"config field {'.'.join(map(str, err['loc']))}: " if err["loc"] else "config: "
        raise GpuplanError(f"{name}: {where}{err['msg'].removeprefix('Value error, ')}") from None


@cache
def builtin_model_data() -> dict[str, Any]:
    """The built-in names: each one's config.json fields, its published size and where both came from."""
    return json.loads(resources.files("gpuplan").joinpath("data/models.json").read_text())["models"]


BUILTIN_MODELS: dict[str, ModelArch] = {
    name: arch_from_config(entry["config"], name, "builtin", None) for name, entry in builtin_model_data().items()
}
DEFAULT_MODEL = "bert-base-uncased"


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
        return arch_from_config(read_config(path), model, "file", str(path))
    if "/" in model and not model.startswith((".", "/", "~")):
        return _hub_arch(model)
    raise GpuplanError(
        f"unknown model {model!r}.{did_you_mean(model, BUILTIN_MODELS)} Use a built-in name (`gpuplan models` "
        "lists them), a path to a config.json or model folder, or a Hub id such as google-bert/bert-base-uncased"
    )


MAX_CONFIG_BYTES = 4 * 2**20  # a config.json is kilobytes (a large id2label map: some hundred)


def read_config(path: Path) -> dict[str, Any]:
    """A config.json's fields: a binary, non-UTF-8, huge or unreadable file, or one that is not a JSON object, is one
    line naming it."""
    from pricing.files import read_text

    text = read_text(path, "model config", max_bytes=MAX_CONFIG_BYTES, error=GpuplanError)
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise GpuplanError(f"model config {path} is not valid JSON: {one_line(e)[:160]}") from None
    if not isinstance(config, dict):
        raise GpuplanError(f"model config {path} is not a JSON object")
    return config


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
    return arch_from_config(read_config(Path(path)), repo_id, "hub", None)
