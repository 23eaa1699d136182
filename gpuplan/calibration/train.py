"""The calibration fine-tune: time a few real training steps of the workload's BERT at each precision.

The steps are what users run: `model.compile(optimizer=Adam)` and `model.fit`, with a callback that clocks each
step. The FLOPs are counted from the graph fit traced, so counting costs no second trace.
"""

from __future__ import annotations

import datetime as dt
import gc
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuplan import __version__
from gpuplan.calibration.device import PeakMemory, choose_mixed_policy, detect_device, import_tf
from gpuplan.calibration.opmix import OpMix, op_mix
from gpuplan.calibration.progress import Progress
from gpuplan.measurement import CalibrationResult, DeviceInfo, RunResult
from gpuplan.perf.flops import train_flops_per_step
from gpuplan.errors import GpuplanError
from gpuplan.stats import percentile
from gpuplan.workload import DatasetStats, Workload

# Timed steps and warm-up steps when the caller doesn't say. A CPU step of BERT-base takes seconds and its
# times vary by a few percent, so a handful tells the median; a GPU needs a few steps to settle (autotuning, the
# allocator growing) and its steps are cheap.
DEFAULT_STEPS = {"cpu": 5, "gpu": 30}
DEFAULT_WARMUP_STEPS = {"cpu": 1, "gpu": 3}
SYNTHETIC_POOL_BATCHES = 4  # synthetic batches cycle through this many distinct batches
FIRST_WORD_ID = 999  # BERT's vocab: ids below are [PAD], [unused..], [UNK], [CLS], [SEP], [MASK]


@dataclass
class TrainData:
    input_ids: Any  # int32 [n, seq_len]
    attention_mask: Any
    labels: Any  # int32 [n]
    num_labels: int


@dataclass
class StepTimes:
    warmup_seconds: float
    steps: list[float]
    train_seconds: float
    losses: list[float]
    flops: float | None
    peak_memory_bytes: int | None
    op_mix: OpMix | None = None


Notify = Callable[[str], None]


def run_calibration(
    workload: Workload,
    *,
    steps: int | None = None,
    warmup_steps: int | None = None,
    dataset: str | Path | None = None,
    text_column: str = "text",
    label_column: str = "label",
    seed: int = 0,
    learning_rate: float = 5e-5,
    progress: Progress | None = None,
    notify: Notify | None = None,
) -> CalibrationResult:
    """Train the workload's model for warm-up + `steps` steps at each of its precisions on the device TensorFlow
    sees (and data-parallel when several GPUs are visible); return what was measured."""
    from gpuplan.calibration.hub import hub_online
    from gpuplan.calibration.model import model_source

    notes: list[str] = []

    def tell(message: str) -> None:
        notes.append(message)
        if notify is not None:
            notify(message)

    if steps is not None and steps < 1 or warmup_steps is not None and warmup_steps < 1:
        raise GpuplanError("--steps and --warmup-steps must be 1 or more (the first step traces the graph)")
    online = hub_online() if (dataset is not None or workload.arch.source == "hub") else False
    # Read the data before importing TensorFlow: a misspelt column should fail in a second, not in ten.
    data_source, tokenizer_desc, stats, loaded = "synthetic", None, None, None
    if dataset is not None:
        from gpuplan.calibration.data import load_labeled_texts

        loaded = load_labeled_texts(dataset, text_column, label_column, online=online)
    tf = import_tf()
    device = detect_device(tf)
    steps = steps or DEFAULT_STEPS[device.kind]
    warmup_steps = warmup_steps or DEFAULT_WARMUP_STEPS[device.kind]
    if loaded is not None:
        data, stats, tokenizer_desc = _real_data(loaded, workload, online, tell, seed,
                                                 (steps + warmup_steps) * workload.batch_size * device.count)
        data_source = loaded.source
    else:
        data = synthetic_data(workload, seed, workload.batch_size * device.count)
    if workload.stack == "keras-xla":
        tell(f"XLA (jit_compile=True) compiles for fixed shapes: every batch is padded to seq-len {workload.seq_len} "
             "here; with dynamic padding XLA would recompile for each new length")
    source = model_source(workload.arch, workload.model, data.num_labels, online=online)
    for n in source.notes:
        tell(n)

    runs: list[RunResult] = []
    replicas = [1, device.count] if device.count > 1 else [1]
    for gpu_count in replicas:
        for precision in workload.precisions:
            runs.append(_run_precision(tf, device, source, data, workload, precision, gpu_count, steps,
                                       warmup_steps, seed, learning_rate, progress, tell))
    if device.count > 1:
        _note_scaling(runs, device.count, tell)
    return CalibrationResult(
        created_at=dt.datetime.now(dt.timezone.utc),
        gpuplan_version=__version__,
        device=device,
        versions=_versions(),
        # What ran is the stock stack (with XLA when asked), whatever stack the estimate will carry it to.
        workload=workload.model_copy(update={"dataset": stats or workload.dataset,
                                             "stack": "keras-xla" if workload.stack == "keras-xla" else "keras"}),
        weights=source.weights,
        dataset=stats,
        model_source=source.describe,
        data_source=data_source,
        tokenizer=tokenizer_desc,
        runs=runs,
        notes=notes,
    )


def _real_data(loaded: Any, workload: Workload, online: bool, tell: Notify, seed: int,
               needed: int) -> tuple[TrainData, DatasetStats, str]:
    import numpy as np

    from gpuplan.calibration import tokenize as tk

    rng = np.random.default_rng(seed)
    held, n = len(loaded.texts), loaded.total_examples  # a big file arrives as a sample of its rows
    sample = rng.permutation(held)[: tk.MAX_TEXTS_FOR_STATS] if held > tk.MAX_TEXTS_FOR_STATS else np.arange(held)
    texts = [loaded.texts[i] for i in sample]
    tok, desc = tk.load_tokenizer(workload.arch, workload.model, texts, online=online, notify=tell)
    enc = tk.encode(tok, texts, desc, workload.arch.vocab_size)
    stats = tk.dataset_stats(enc, n, loaded.num_classes, workload.batch_size, workload.seq_len)
    if len(sample) < n:
        tell(f"token lengths from a random {len(sample):,} of the {n:,} examples")
    if workload.num_examples != n:
        tell(f"the dataset has {n:,} examples; the workload plans for {workload.num_examples:,} (--num-examples)")
    if stats.mean_padded_len is not None and stats.mean_padded_len < 0.8 * workload.seq_len:
        share = stats.mean_padded_len / workload.seq_len
        tell(f"padding each batch to its longest text would average {stats.mean_padded_len:.0f} tokens instead of "
             f"{workload.seq_len} ({share:.0%}): dynamic padding cuts a step's work about that much; "
             f"timed here at the full {workload.seq_len}")
    # Timed at the workload's seq_len: fixed shapes, one trace, the length the estimate plans for.
    order = rng.permutation(len(sample))[:needed]
    ids, mask = tk.pad_to([enc.ids[i] for i in order], workload.seq_len, enc.pad_id)
    labels = np.asarray([loaded.labels[sample[i]] for i in order], dtype=np.int32)
    return TrainData(ids, mask, labels, loaded.num_classes), stats, desc


def synthetic_data(workload: Workload, seed: int, examples: int) -> TrainData:
    """Random full-length token ids: the workload's shape with no text to read."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = max(examples, 1) * SYNTHETIC_POOL_BATCHES
    low = FIRST_WORD_ID if workload.arch.vocab_size > 2 * FIRST_WORD_ID else 1
    ids = rng.integers(low, workload.arch.vocab_size, size=(n, workload.seq_len), dtype=np.int32)
    labels = rng.integers(0, workload.arch.num_labels, size=n, dtype=np.int32)
    return TrainData(ids, np.ones_like(ids), labels, workload.arch.num_labels)


def _run_precision(tf: Any, device: DeviceInfo, source: Any, data: TrainData, workload: Workload, precision: str,
                   gpu_count: int, steps: int, warmup: int, seed: int, lr: float, progress: Progress | None,
                   tell: Notify) -> RunResult:
    if precision == "fp32":
        policy = "float32"
    else:
        choice = choose_mixed_policy(device)
        if choice.policy is None:
            tell(f"mixed precision not measured: {choice.skipped_reason}")
            return RunResult(precision="mixed", dtype="none", gpu_count=gpu_count, batch_size=workload.batch_size,
                             seq_len=workload.seq_len, skipped_reason=choice.skipped_reason)
        policy = choice.policy
        if choice.note and gpu_count == 1:
            tell(choice.note)
    base = dict(precision=precision, dtype=policy, gpu_count=gpu_count, batch_size=workload.batch_size,
                seq_len=workload.seq_len, warmup_steps=warmup)
    label = f"{precision} ({policy})" + (f" x{gpu_count} GPUs" if gpu_count > 1 else "")

    def attempt(batch: int, n_steps: int, n_warmup: int, bar: Progress | None) -> StepTimes:
        return time_steps(tf, device, source, data, policy, batch, gpu_count, n_steps, n_warmup, seed, lr,
                          bar, label, jit_compile=workload.stack == "keras-xla")

    try:
        t = attempt(workload.batch_size, steps, warmup, progress)
    except (tf.errors.ResourceExhaustedError, MemoryError):
        if progress is not None:
            progress.finish()
        _release(tf)
        tell(f"{label}: out of memory at batch {workload.batch_size}; searching for the largest batch that fits")
        fits = largest_fitting_batch(lambda b: _fits(tf, lambda: attempt(b, 1, 1, None)), workload.batch_size)
        reason = (f"out of memory at batch {workload.batch_size} per device"
                  + (f"; the largest batch that fits is {fits}" if fits else "; not even batch 1 fits"))
        return RunResult(**base, largest_batch_that_fits=fits, skipped_reason=reason)
    timed = t.steps
    samples = workload.batch_size * gpu_count
    return RunResult(
        **base,
        steps=len(timed),
        warmup_seconds=t.warmup_seconds,
        step_seconds=statistics.median(timed),
        step_seconds_p90=percentile(timed, 90),
        step_seconds_mean=statistics.fmean(timed),
        samples_per_second=samples / statistics.median(timed),
        train_seconds=t.train_seconds,
        flops_per_step=t.flops,
        flops_per_step_model=analytic_flops(workload),
        peak_memory_bytes=t.peak_memory_bytes,
        memory_bytes_per_step=t.op_mix.memory_bytes / gpu_count if t.op_mix else None,
        kernels_per_step=t.op_mix.kernels if t.op_mix else None,
        matmul_flops_by_dtype={k: v / gpu_count for k, v in t.op_mix.matmul_flops.items()} if t.op_mix else {},
        loss_first=t.losses[0],
        loss_last=t.losses[-1],
    )


def time_steps(tf: Any, device: DeviceInfo, source: Any, data: TrainData, policy: str, batch: int,
               gpu_count: int, steps: int, warmup: int, seed: int, lr: float, progress: Progress | None,
               label: str = "", jit_compile: bool = False) -> StepTimes:
    """Build, compile and `fit` for warmup + steps steps, a clock on each step; the first one traces the graph."""
    _release(tf)
    tf.keras.mixed_precision.set_global_policy(policy)
    strategy = (tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(gpu_count)]) if gpu_count > 1
                else tf.distribute.get_strategy())
    memory = PeakMemory(tf, device)
    memory.reset()
    total = warmup + steps
    try:
        with strategy.scope():
            model = source.build(tf, seed)
            # compile wraps Adam in a LossScaleOptimizer under mixed_float16, as it does for users.
            model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=lr), loss=_loss(tf),
                          jit_compile=jit_compile)
        ds = make_dataset(tf, data, batch * gpu_count, seed)
        clock = step_clock(tf, progress, label, total)
        start = time.perf_counter()
        model.fit(ds, steps_per_epoch=total, epochs=1, verbose=0, callbacks=[clock])
        if progress is not None:
            progress.finish()
        ends = clock.ends
        times = [ends[0] - start] + [b - a for a, b in zip(ends, ends[1:])]
        peak = memory.peak_bytes()
        flops, mix = traced_flops(model, ds)
        return StepTimes(
            warmup_seconds=ends[warmup - 1] - start, steps=times[warmup:], train_seconds=ends[-1] - start,
            losses=step_losses(clock.running_loss), flops=flops / gpu_count if flops else None,
            peak_memory_bytes=peak, op_mix=mix,
        )
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


def step_clock(tf: Any, progress: Progress | None, label: str, total: int) -> Any:
    """A Keras callback that notes when each step ends and fit's running loss.

    It asks for the logs as numbers (no `_supports_tf_logs`), so Keras waits for each step to finish before the
    clock reads, as fit's own progress bar (verbose=1) makes it do.
    """

    class StepClock(tf.keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.ends: list[float] = []
            self.running_loss: list[float] = []

        def on_train_begin(self, logs: Any = None) -> None:
            self.began = time.perf_counter()
            if progress is not None:
                progress.start(label, total)

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.ends.append(time.perf_counter())
            self.running_loss.append(float((logs or {}).get("loss", float("nan"))))
            if progress is not None:
                previous = self.ends[-2] if len(self.ends) > 1 else self.began
                progress.step(len(self.ends), self.ends[-1] - previous)

    return StepClock()


def step_losses(running: list[float]) -> list[float]:
    """Each step's loss from fit's running mean over equal batches: loss_i = i*m_i - (i-1)*m_(i-1)."""
    return [m if i == 0 else (i + 1) * m - i * running[i - 1] for i, m in enumerate(running)]


def traced_flops(model: Any, ds: Any) -> tuple[float | None, OpMix | None]:
    """FLOPs and op mix of the graph fit traced. Asking the train function for the concrete function of an
    iterator like the one fit used returns the trace fit made (no retrace); unknown matmul shapes give None."""
    try:
        concrete = model.train_function.get_concrete_function(iter(ds))
    except Exception:  # the train function's API is Keras-internal; a count is not worth a crash
        return None, None
    mix = op_mix(concrete.graph)
    return mix.total_matmul_flops, mix


def _loss(tf: Any) -> Callable[[Any, Any], Any]:
    def loss(labels: Any, logits: Any) -> Any:
        # float16 logits lose the small differences a cross-entropy needs; Keras guides do the same cast.
        return tf.keras.losses.sparse_categorical_crossentropy(labels, tf.cast(logits, tf.float32), from_logits=True)

    return loss


def make_dataset(tf: Any, data: TrainData, global_batch: int, seed: int) -> Any:
    ds = tf.data.Dataset.from_tensor_slices(
        ({"input_ids": data.input_ids, "attention_mask": data.attention_mask}, data.labels)
    )
    return (ds.shuffle(len(data.labels), seed=seed).repeat().batch(global_batch, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE))


def largest_fitting_batch(fits: Callable[[int], bool], failed: int) -> int | None:
    """Halve until a batch fits, then bisect up to within ~1/8: each probe costs a model build and a trace."""
    hi, b = failed, failed // 2
    while b >= 1 and not fits(b):
        hi, b = b, b // 2
    if b < 1:
        return None
    lo = b
    while hi - lo > max(1, lo // 8):
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _fits(tf: Any, probe: Callable[[], Any]) -> bool:
    try:
        probe()
        return True
    except (tf.errors.ResourceExhaustedError, MemoryError):
        _release(tf)
        return False


def _release(tf: Any) -> None:
    tf.keras.backend.clear_session()
    gc.collect()


def analytic_flops(workload: Workload) -> float:
    """The performance model's count, to set beside the traced graph's."""
    return float(train_flops_per_step(workload.arch, workload.batch_size, workload.seq_len))


def _note_scaling(runs: list[RunResult], count: int, tell: Notify) -> None:
    for one in (r for r in runs if r.gpu_count == 1 and r.measured):
        many = next((r for r in runs if r.gpu_count == count and r.precision == one.precision and r.measured), None)
        if many is not None and one.samples_per_second and many.samples_per_second:
            eff = many.samples_per_second / (count * one.samples_per_second)
            tell(f"{one.precision}: {count} GPUs with MirroredStrategy give {eff:.0%} of {count}x one GPU's "
                 "samples/s (gradient all-reduce)")


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for pkg in ("tensorflow", "tf-keras", "transformers", "tokenizers", "datasets", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return versions
