"""Tokenize the user's texts with the model's tokenizer, and measure what the estimate needs from them:
the token-length distribution, dynamic-padding lengths and how fast this host tokenizes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuplan.errors import GpuplanError, one_line
from gpuplan.stats import percentile
from gpuplan.workload import DatasetStats, ModelArch

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Tokenizing a million texts to learn a length distribution teaches nothing 50k don't.
MAX_TEXTS_FOR_STATS = 50_000


@dataclass
class Encoded:
    ids: list[list[int]]  # untruncated, with the model's special tokens ([CLS] ... [SEP])
    pad_id: int
    tokenizer: str  # where the tokenizer came from, for the result's notes
    seconds: float  # wall time of tokenizing `ids`


def model_folder(arch: ModelArch) -> Path | None:
    if arch.path is None:
        return None
    p = Path(arch.path)
    return p if p.is_dir() else p.parent


def load_tokenizer(arch: ModelArch, model: str, texts: list[str], *, online: bool,
                   notify: Callable[[str], None]) -> tuple[Any, str]:
    """(a `tokenizers.Tokenizer`, a description): the folder's, the Hub's, else one trained on the texts."""
    folder = model_folder(arch)
    if folder is not None and any((folder / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(folder))
        except Exception as e:  # a broken tokenizer.json or vocab file
            raise GpuplanError(f"cannot read the tokenizer in model folder {folder}: {one_line(e)[:200]}") from None
        return _backend(tok, f"{folder}"), "the model folder's tokenizer"
    if folder is None:
        hub_id = model
        try:
            from transformers import AutoTokenizer

            # local_files_only offline: a tokenizer in the Hub cache still counts; nothing waits on the network.
            tok = AutoTokenizer.from_pretrained(hub_id, local_files_only=not online)
            return _backend(tok, hub_id), f"the tokenizer of {hub_id} (Hugging Face Hub)"
        except Exception:
            pass
    where = "the model folder has none" if folder is not None else "the Hub is not reachable and it is not cached"
    tok = train_wordpiece(texts, arch.vocab_size)
    notify(f"No tokenizer for {model} ({where}): trained a WordPiece tokenizer on the dataset "
           f"({tok.get_vocab_size()} tokens); token lengths approximate the model's own tokenizer")
    return tok, f"WordPiece trained on the dataset ({tok.get_vocab_size()} tokens)"


def _backend(tok: Any, where: str) -> Any:
    """The fast tokenizer underneath, without the truncation a tokenizer.json may carry (we need true lengths)."""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise GpuplanError(f"the tokenizer of {where} has no fast (Rust) version; save it with tokenizer.json")
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(backend.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


def train_wordpiece(texts: list[str], vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=min(vocab_size, 30522), special_tokens=SPECIAL_TOKENS,
                                        show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tok


def encode(tok: Any, texts: list[str], description: str, vocab_size: int) -> Encoded:
    start = time.perf_counter()
    ids = [e.ids for e in tok.encode_batch(texts)]
    seconds = time.perf_counter() - start
    top = max((max(x) for x in ids if x), default=0)
    if top >= vocab_size:
        raise GpuplanError(f"the tokenizer ({description}) produces token id {top}, beyond the model's vocab_size "
                           f"{vocab_size}; use the tokenizer that belongs to this model")
    pad = tok.token_to_id("[PAD]") if tok.token_to_id("[PAD]") is not None else tok.token_to_id("<pad>")
    return Encoded(ids=ids, pad_id=pad if pad is not None else 0, tokenizer=description, seconds=seconds)


def mean_padded_len(lengths: list[int], batch_size: int, seq_len: int, seed: int = 0) -> float:
    """Mean batch length when each shuffled batch is padded to its longest text (capped at seq_len)."""
    order = list(lengths)
    random.Random(seed).shuffle(order)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return float(sum(min(max(b), seq_len) for b in batches) / len(batches))


def dataset_stats(enc: Encoded, num_examples: int, num_labels: int, batch_size: int, seq_len: int) -> DatasetStats:
    lengths = [len(x) for x in enc.ids]
    return DatasetStats(
        num_examples=num_examples,
        num_labels=num_labels,
        token_len_p50=percentile(lengths, 50),
        token_len_p90=percentile(lengths, 90),
        token_len_max=int(max(lengths)),
        truncated_share=float(sum(n > seq_len for n in lengths) / len(lengths)),
        mean_padded_len=mean_padded_len(lengths, batch_size, seq_len),
        tokenize_examples_per_second=float(len(lengths) / enc.seconds) if enc.seconds > 0 else None,
    )


def pad_to(ids: list[list[int]], seq_len: int, pad_id: int) -> tuple[Any, Any]:
    """(input_ids, attention_mask) int32 arrays, truncated and padded to seq_len: the shape the step is timed at."""
    import numpy as np

    out = np.full((len(ids), seq_len), pad_id, dtype=np.int32)
    mask = np.zeros((len(ids), seq_len), dtype=np.int32)
    for i, x in enumerate(ids):
        x = x[:seq_len]
        if len(x) == seq_len and len(ids[i]) > seq_len:
            x = x[:-1] + ids[i][-1:]  # keep [SEP] last, as a truncating tokenizer does
        out[i, :len(x)] = x
        mask[i, :len(x)] = 1
    return out, mask
