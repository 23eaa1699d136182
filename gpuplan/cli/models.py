"""`gpuplan models`: the built-in model names, their sizes and how long an input they take."""

from __future__ import annotations

from typing import Any

from gpuplan import render
from gpuplan.cli import app, examples
from gpuplan.cli._options import FormatOpt
from gpuplan.models import BUILTIN_MODELS, builtin_model_data
from gpuplan.perf.flops import compute_layers, param_counts


def _millions(n: float | None) -> str:
    return "" if n is None else f"{n / 1e6:.1f}M"


MODEL_COLUMNS = [
    ("model", "model", None), ("model_type", "type", None), ("params", "params", _millions),
    ("published_params", "published", _millions), ("embedding_share", "in embeddings", lambda v: f"{v:.0%}"),
    ("layers", "layers", None), ("hidden_size", "hidden", None), ("max_tokens", "max tokens", None),
]
CSV_KEYS = [k for k, _, _ in MODEL_COLUMNS] + ["stored_layers", "num_attention_heads", "vocab_size",
                                                "config_source", "published_params_source"]
FOOTER = ("params: the bare encoder, as model cards count it; the classifier adds one h x h dense and the output "
          "layer. in embeddings: the share of params in lookup tables (no FLOPs, but Adam state). Configs and Hub "
          "ids of these model types work too: --model PATH or --model ORG/NAME.")


@app.command(epilog=examples("gpuplan models", "gpuplan models --format csv"))
def models(fmt: FormatOpt = "table") -> None:
    """Built-in models: parameters, layers, hidden size, max tokens."""
    render.check_format(fmt)
    rows = [_row(name) for name in BUILTIN_MODELS]
    render.emit(rows, MODEL_COLUMNS, fmt, csv_keys=CSV_KEYS, footer=render.wrap(FOOTER))


def _row(name: str) -> dict[str, Any]:
    arch, data = BUILTIN_MODELS[name], builtin_model_data()[name]
    counts = param_counts(arch)
    return {
        "model": name, "model_type": arch.model_type, "params": counts.base,
        "published_params": data.get("published_params"), "embedding_share": round(counts.embeddings / counts.base, 3),
        "layers": compute_layers(arch), "stored_layers": arch.num_hidden_groups * arch.inner_group_num
        if arch.family == "albert" else arch.num_hidden_layers,
        "hidden_size": arch.hidden_size, "num_attention_heads": arch.num_attention_heads,
        "vocab_size": arch.vocab_size, "max_tokens": arch.max_tokens, "max_tokens_note": data.get("max_tokens_note"),
        "config_source": data.get("config_source"), "published_params_source": data.get("published_params_source"),
        "notes": data.get("notes"),
    }
