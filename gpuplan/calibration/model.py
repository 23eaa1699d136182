"""Build the TensorFlow classifier (BERT or one of its family) to time: random weights from the config, or the real weights of a folder
(model.safetensors or tf_model.h5) or of a Hub model.

Step time doesn't depend on the weights, so random weights time the same as pretrained ones; the loss only falls
meaningfully from pretrained weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gpuplan.calibration.tokenize import model_folder
from gpuplan.errors import GpuplanError, one_line
from gpuplan.models import DISTILBERT_KEYS, TYPE_FIELDS, ModelArch

DISTILBERT_NAMES = {ours: theirs for theirs, ours in DISTILBERT_KEYS.items()}

WEIGHT_FILES = ("model.safetensors", "tf_model.h5")


@dataclass
class ModelSource:
    """How to build the model for each precision: the same config and the same starting weights every time."""

    config: Any  # transformers PretrainedConfig
    weights: Literal["random", "pretrained"]
    describe: str
    load: Callable[[Any], None] | None = None  # loads the real weights into a built model
    notes: list[str] = field(default_factory=list)

    def build(self, tf: Any, seed: int) -> Any:
        from transformers import TFAutoModelForSequenceClassification

        tf.keras.utils.set_random_seed(seed)  # the same random start for fp32 and mixed
        model = TFAutoModelForSequenceClassification.from_config(self.config)
        model(model.dummy_inputs, training=False)
        if self.load is not None:
            self.load(model)
        return model


def hf_config(arch: ModelArch, num_labels: int) -> Any:
    """The transformers config of the arch's model type, from its fields (they carry Hugging Face's names)."""
    from transformers import AutoConfig

    fields = arch.model_dump(exclude={"name", "source", "path", "num_labels", "model_type"}, exclude_none=True)
    fields = {k: v for k, v in fields.items() if k not in TYPE_FIELDS or arch.model_type in TYPE_FIELDS[k]}
    if "pos_att_type" in fields:
        fields["pos_att_type"] = list(fields["pos_att_type"])
    if arch.model_type == "distilbert":
        fields = {DISTILBERT_NAMES.get(k, k): v for k, v in fields.items() if k != "type_vocab_size"}
    return AutoConfig.for_model(arch.model_type, **fields, num_labels=num_labels)


def model_source(arch: ModelArch, model: str, num_labels: int, *, online: bool) -> ModelSource:
    from transformers import AutoConfig

    folder = model_folder(arch)
    if folder is not None:
        config = _folder_config(arch, num_labels)
        return _folder_source(folder, config)
    if arch.source == "hub":
        if online:
            try:
                config = AutoConfig.from_pretrained(model, num_labels=num_labels)
                return _hub_source(model, config)
            except Exception as e:  # no TF-loadable weights, gated, network gone since
                why = f"could not load the weights of {model} from the Hub ({one_line(e)[:120]})"
        else:
            why = f"the Hugging Face Hub is not reachable, so {model} is built from its config"
        return ModelSource(hf_config(arch, num_labels), "random", f"{model} (config from the Hub)",
                           notes=[random_weights_note(why)])
    return ModelSource(hf_config(arch, num_labels), "random", f"{model} (built-in config)",
                       notes=[random_weights_note(f"{model} is a built-in name: the architecture from its config")])


def random_weights_note(why: str) -> str:
    return f"weights: random ({why}); step time doesn't depend on the weights, the loss does"


def _folder_config(arch: ModelArch, num_labels: int) -> Any:
    from transformers import AutoConfig

    config_file = Path(arch.path) if Path(arch.path).is_file() else Path(arch.path) / "config.json"
    doc = json.loads(config_file.read_text())  # resolve_model has already validated it
    # The data decides the classes; a checkpoint's own id2label (often absent or 2 labels) would clash.
    for key in ("id2label", "label2id", "num_labels", "architectures", "_name_or_path"):
        doc.pop(key, None)
    model_type = doc.pop("model_type", "bert")
    try:
        return AutoConfig.for_model(model_type, **doc, num_labels=num_labels)
    except Exception as e:
        raise GpuplanError(
            f"model config {config_file} can't build a {model_type} model: {one_line(e)[:200]}"
        ) from None


def _folder_source(folder: Path, config: Any) -> ModelSource:
    safetensors = folder / "model.safetensors"
    h5 = folder / "tf_model.h5"
    if safetensors.is_file():
        return ModelSource(config, "pretrained", f"{folder} (model.safetensors)",
                           load=lambda m: load_safetensors(m, safetensors))
    if h5.is_file():
        return ModelSource(config, "pretrained", f"{folder} (tf_model.h5)", load=lambda m: load_h5(m, h5))
    return ModelSource(config, "random", f"{folder} (config.json only)",
                       notes=[random_weights_note(f"{folder} has no {' or '.join(WEIGHT_FILES)}")])


def load_safetensors(model: Any, path: Path) -> None:
    """PyTorch-layout weights into the TF model. Checkpoints of the bare encoder (sentence-transformers, BertModel)
    lack the `bert.` prefix the classifier's encoder has, so add it; the classifier head starts random."""
    from safetensors.numpy import load_file
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    try:
        state = load_file(str(path))
    except Exception as e:  # truncated download, not a safetensors file
        raise GpuplanError(f"cannot read weights {path}: {one_line(e)[:200]}; re-download the model folder") from None
    prefix = model.base_model_prefix
    if not any(k.startswith(prefix + ".") for k in state):
        state = {f"{prefix}.{k}": v for k, v in state.items()}
    _, info = load_pytorch_state_dict_in_tf2_model(
        model, state, allow_missing_keys=True, output_loading_info=True, skip_logger_warnings=True
    )
    missing = [k for k in info["missing_keys"] if "classifier" not in k and "pooler" not in k]
    loaded = len(model.weights) - len(info["missing_keys"])
    if missing or loaded <= 0:
        raise GpuplanError(
            f"weights {path} don't match the config in {path.parent}: {len(missing)} encoder weights missing "
            f"(e.g. {missing[0] if missing else '?'}); use the config.json that came with these weights"
        )


def load_h5(model: Any, path: Path) -> None:
    from transformers.modeling_tf_utils import load_tf_weights

    try:
        # transformers' own h5 reader: matches by weight name and leaves a differently sized head random.
        load_tf_weights(model, str(path), ignore_mismatched_sizes=True)
    except Exception as e:
        raise GpuplanError(f"cannot read weights {path}: {one_line(e)[:200]}; re-download the model folder") from None


def _hub_source(repo_id: str, config: Any) -> ModelSource:
    def load(model: Any) -> None:
        from transformers import TFAutoModelForSequenceClassification

        pre = TFAutoModelForSequenceClassification.from_pretrained(repo_id, config=config,
                                                                  ignore_mismatched_sizes=True)
        model.set_weights(pre.get_weights())

    return ModelSource(config, "pretrained", f"{repo_id} (Hugging Face Hub)", load=load)
