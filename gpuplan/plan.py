"""Plans: every offer x precision (x market) -> time and cost; ranking, Pareto front and the recommendation.

Raw units throughout (seconds, USD, bytes); rendering formats them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from gpuplan.measurement import CalibrationResult
from gpuplan.errors import GpuplanError
from gpuplan.perf.calibrated import Lessons, dataset_notes, learn, measured_step
from gpuplan.perf.flops import param_count
from gpuplan.perf.memory import footprint, max_batch
from gpuplan.perf.stacks import step_time, stack_notes
from gpuplan.perf.startup import StartupPhase, family, startup_phases, startup_seconds
from gpuplan.perf.throughput import allreduce_seconds, precision_path
from gpuplan.workload import Workload, same_architecture
from pricing.catalog import find_gpu
from pricing.errors import PricingError
from pricing.models import Catalog, GpuSpec, InstanceOffer, Market

BILLING_MINIMUM_SECONDS = 60  # AWS per-second billing for Linux instances, 60 s minimum
SORTS = ("cost", "time")


class _InHours(BaseModel):
    """`hours` beside `total_seconds` in the JSON (the README documents it); core code computes in seconds."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def hours(self) -> float:
        return self.total_seconds / 3600  # type: ignore[attr-defined]


class Plan(_InHours):
    instance: str
    region: str | None
    gpu: str
    gpu_count: int
    precision: Literal["fp32", "mixed"]
    dtype: str
    stack: str = Field("keras", description="the software modelled: keras, keras-xla or tuned")
    market: Market
    batch_size: int = Field(description="per GPU")
    samples_per_second: float
    samples_per_second_per_gpu: float
    step_seconds: float
    steps: int
    warmup_seconds: float
    train_seconds: float
    startup_seconds: float
    startup_phases: list[StartupPhase] = Field(
        default_factory=list, description="boot, driver, install, model download, trace: seconds and their source")
    total_seconds: float = Field(description="wall time from launch to the end of training")
    billed_seconds: int
    price_per_hour: float
    cost_usd: float
    fits_memory: bool
    memory_bytes: float
    max_batch_size: int
    scaling_efficiency: float = Field(1.0, description="per-GPU throughput vs one GPU, after the all-reduce")
    source: Literal["model", "measured"]
    correction: float = Field(1.0, description="model x this = what a calibration taught (1.0: no calibration)")
    pareto: bool = False
    input_bound: bool = Field(False, description="the host's CPUs can't tokenize as fast as the GPUs train")
    notes: list[str] = []


class Baseline(_InHours):
    """The plan the recommendation is compared with: what someone runs before comparing anything."""

    instance: str
    gpu: str
    precision: str
    market: str
    train_seconds: float
    total_seconds: float
    cost_usd: float
    why: str = Field(description="why this plan: the cheapest single-GPU instance, or --baseline")


class MixedGain(BaseModel):
    """What mixed precision buys on the recommended instance and market: training alone, start-up left out."""

    instance: str
    gpu: str
    market: str
    fp32_train_seconds: float
    mixed_train_seconds: float
    train_speedup: float = Field(description="fp32 training time / mixed training time")
    train_saving_usd: float = Field(description="the training time saved, at the instance's price")


class Recommendation(_InHours):
    instance: str
    region: str | None
    gpu: str
    gpu_count: int
    precision: str
    dtype: str
    market: str
    train_seconds: float
    total_seconds: float
    cost_usd: float
    reason: str
    baseline: Baseline | None
    speedup: float | None = Field(description="baseline total time / this total time (start-up included)")
    train_speedup: float | None = Field(None, description="baseline training time / this training time")
    saving_usd: float | None
    saving_pct: float | None
    mixed_precision: MixedGain | None = None


SCHEMA_VERSION = 1  # of the JSON below; gpuplan/schema/estimate.schema.json is generated from these models


class Estimate(BaseModel):
    schema_version: int = Field(SCHEMA_VERSION, description="changes when a field is renamed or removed")
    workload: Workload
    plans: list[Plan]
    recommendation: Recommendation | None
    notes: list[str] = []


class LocalMachine(BaseModel):
    """`--gpu local`: this machine, priced at what its time is worth to the user (0 by default)."""

    price_per_hour: float = 0.0
    name: str = "local"


def total_steps(workload: Workload, gpu_count: int) -> int:
    per_epoch = math.ceil(workload.num_examples / (workload.batch_size * gpu_count))
    return math.ceil(per_epoch * workload.epochs)


def billed(seconds: float, price_per_hour: float) -> tuple[int, float]:
    """Per-second billing with a 60-second minimum: (billed seconds, USD)."""
    s = max(BILLING_MINIMUM_SECONDS, math.ceil(seconds))
    return s, s / 3600 * price_per_hour


def offer_startup(workload: Workload, offer: InstanceOffer, dtype: str,
                  measured: dict[str, dict[str, float]] | None = None) -> list[StartupPhase]:
    """The offer's start-up in phases: a catalog's own figure when it sets one, else the phase model, with the
    phases a launch measured on this instance family in their place."""
    if "startup_seconds" in offer.model_fields_set:
        return [StartupPhase(phase="catalog", seconds=offer.startup_seconds, source="catalog")]
    return startup_phases(workload.arch, "float32" if dtype.startswith("float32") else dtype,
                          (measured or {}).get(family(offer.instance_type)))


class _Step(BaseModel):
    """One step on an instance: its seconds, how they were found, and what they cost the multi-GPU scaling."""

    seconds: float
    warmup_seconds: float = 0.0
    source: Literal["model", "measured"] = "model"
    scaling: float = 1.0
    correction: float = 1.0
    notes: list[str] = []


def instance_step(workload: Workload, offer: InstanceOffer, catalog: Catalog, gpu: GpuSpec, precision: str,
                  lessons: Lessons, calibrations: Sequence[CalibrationResult]) -> _Step:
    """Measured on this very instance shape, else one GPU measured or modelled plus the all-reduce between its GPUs."""
    measured = measured_step(workload, catalog, calibrations, gpu.key, offer.gpu_count, precision)
    if measured is not None:
        return _Step(seconds=measured[0], warmup_seconds=measured[1], source="measured")
    single_measured = measured_step(workload, catalog, calibrations, gpu.key, 1, precision)
    if single_measured is not None:
        step = _Step(seconds=single_measured[0], warmup_seconds=single_measured[1], source="measured")
    else:
        correction = lessons.time_factor.get(precision, 1.0)
        scale = 1.0 if lessons.time_factor else lessons.flops_scale
        seconds = step_time(workload.stack, workload.arch, gpu, precision, workload.batch_size, workload.seq_len,
                            flops_scale=scale).seconds * correction
        step = _Step(seconds=seconds, correction=correction)
    comm = allreduce_seconds(param_count(workload.arch), offer.gpu_count, offer.allreduce_gbs)
    single = step.seconds
    step.seconds, step.scaling = single + comm, single / (single + comm)
    if offer.gpu_count > 1 and step.scaling < 0.5:
        step.notes.append(f"all-reduce dominates: {comm / step.seconds:.0%} of each step goes to moving gradients "
                          f"over {offer.interconnect}")
    return step


def plan_offer(workload: Workload, offer: InstanceOffer, catalog: Catalog, precision: str, market: Market,
               lessons: Lessons, calibrations: Sequence[CalibrationResult],
               measured_startup: dict[str, dict[str, float]] | None = None) -> Plan | None:
    price = offer.price(market)
    if price is None:
        return None
    gpu = find_gpu(catalog, offer.gpu)
    arch, b, s, mixed = workload.arch, workload.batch_size, workload.seq_len, precision == "mixed"
    path = precision_path(gpu, precision)
    step = instance_step(workload, offer, catalog, gpu, precision, lessons, calibrations)
    notes = list(step.notes)
    steps = total_steps(workload, offer.gpu_count)
    train = steps * step.seconds
    phases = offer_startup(workload, offer, path.dtype, measured_startup)
    startup = startup_seconds(phases)
    total = startup + step.warmup_seconds + train
    billed_s, cost = billed(total, price)
    need = footprint(arch, b, s, mixed).total_bytes * lessons.memory_scale
    fits = need <= gpu.memory_gib * 2**30
    largest = max_batch(arch, s, mixed, gpu.memory_gib / lessons.memory_scale)
    if not fits:
        notes.append(f"batch {b} needs {need / 2**30:.1f} GiB of {gpu.memory_gib:g} GiB; "
                     + (f"--batch-size {largest} fits" if largest else "the model does not fit at this length"))
    samples = b * offer.gpu_count / step.seconds
    input_bound = lessons.tokenize_per_cpu is not None and lessons.tokenize_per_cpu * offer.vcpus < samples
    if input_bound:
        notes.append(f"its {offer.vcpus} vCPUs tokenize about {lessons.tokenize_per_cpu * offer.vcpus:,.0f} "
                     f"examples/s, fewer than the GPUs train ({samples:,.0f}/s): tokenize once before training")
    return Plan(
        instance=offer.instance_type, region=offer.region, gpu=gpu.key, gpu_count=offer.gpu_count,
        precision=precision, dtype=path.dtype, stack=workload.stack, market=market, batch_size=b,
        samples_per_second=samples, samples_per_second_per_gpu=samples / offer.gpu_count,
        step_seconds=step.seconds, steps=steps, warmup_seconds=step.warmup_seconds, train_seconds=train,
        startup_seconds=startup, startup_phases=phases, total_seconds=total, billed_seconds=billed_s,
        price_per_hour=price, cost_usd=cost, fits_memory=fits, memory_bytes=need, max_batch_size=largest,
        scaling_efficiency=step.scaling, source=step.source, correction=step.correction,
        input_bound=input_bound, notes=notes,
    )


def local_calibration(calibrations: Sequence[CalibrationResult]) -> tuple[CalibrationResult, list[str]]:
    """The measurement of this machine for `--gpu local`: the newest one not taken on an EC2 instance.

    Several are given when a saved file meets a fresh --calibrate; the fresh one is what the user means.
    """
    here = [c for c in calibrations if c.device.instance_type is None]
    if not here:
        raise GpuplanError("--gpu local needs a measurement of this machine: add --calibrate or --calibration FILE")
    newest = max(here, key=lambda c: c.created_at)
    notes = [] if len(here) == 1 else [
        f"local: {len(here)} measurements of this machine given; the plan uses the newest, "
        f"of {newest.created_at:%Y-%m-%d %H:%M}"
    ]
    return newest, notes


def plan_local(workload: Workload, cal: CalibrationResult, local: LocalMachine) -> list[Plan]:
    """This machine, from a calibration run on it: warm-up + the full run's steps at the measured step time."""
    plans = []
    for precision in workload.precisions:
        run = cal.run(precision, 1)
        if run is None:
            continue
        if (run.batch_size, run.seq_len) != (workload.batch_size, workload.seq_len) or \
                not same_architecture(cal.workload.arch, workload.arch):
            raise GpuplanError(
                f"the calibration measured {cal.workload.model} at batch {run.batch_size}, seq-len "
                f"{run.seq_len}; --gpu local needs one of this workload ({workload.model}, batch "
                f"{workload.batch_size}, seq-len {workload.seq_len}): rerun with --calibrate"
            )
        steps = total_steps(workload, 1)
        # The warm-up steps are the run's first steps: timed apart (tracing), not to be counted twice. The mean
        # step, not the median, is what adds up to a wall time.
        step = run.step_seconds_mean or run.step_seconds
        total = run.warmup_seconds + max(0, steps - run.warmup_steps) * step
        plans.append(Plan(
            instance=local.name, region=None, gpu=cal.device.gpu_key or cal.device.kind, gpu_count=cal.device.count,
            precision=precision, dtype=run.dtype, stack=cal.workload.stack, market="on-demand",
            batch_size=run.batch_size,
            samples_per_second=run.batch_size / step, samples_per_second_per_gpu=run.batch_size / step,
            step_seconds=step, steps=steps, warmup_seconds=run.warmup_seconds, train_seconds=total,
            startup_seconds=0.0, total_seconds=total, billed_seconds=math.ceil(total),
            price_per_hour=local.price_per_hour, cost_usd=total / 3600 * local.price_per_hour, fits_memory=True,
            memory_bytes=float(run.peak_memory_bytes or 0), max_batch_size=run.batch_size, source="measured",
        ))
    return plans


def cheapest_region(offers: Sequence[InstanceOffer], market: Market) -> list[InstanceOffer]:
    """One offer per instance type: the region where it is cheapest in this market."""
    best: dict[str, InstanceOffer] = {}
    for o in offers:
        price = o.price(market)
        if price is None:
            continue
        cur = best.get(o.instance_type)
        cur_price = None if cur is None else cur.price(market)
        if cur_price is None or price < cur_price:
            best[o.instance_type] = o
    return list(best.values())


def mark_pareto(plans: list[Plan]) -> None:
    """A plan is on the front when no other fitting plan is at least as fast and as cheap, and better in one."""
    fitting = [p for p in plans if p.fits_memory]
    for p in fitting:
        p.pareto = not any(
            q is not p and q.total_seconds <= p.total_seconds and q.cost_usd <= p.cost_usd
            and (q.total_seconds < p.total_seconds or q.cost_usd < p.cost_usd)
            for q in fitting
        )


def check_sort(sort: str) -> str:
    if sort not in SORTS:
        raise GpuplanError(f"unknown sort {sort!r}; use cost or time")
    return sort


def rank(plans: list[Plan], sort: str) -> list[Plan]:
    key = (lambda p: (not p.fits_memory, p.cost_usd, p.total_seconds)) if check_sort(sort) == "cost" else \
          (lambda p: (not p.fits_memory, p.total_seconds, p.cost_usd))
    return sorted(plans, key=key)


def recommend(plans: list[Plan], *, deadline_hours: float | None = None, budget_usd: float | None = None,
              baseline_gpu: str | None = None) -> tuple[Recommendation | None, list[str]]:
    notes: list[str] = []
    fitting = [p for p in plans if p.fits_memory]
    if not fitting:
        return None, ["no plan fits in GPU memory: lower --batch-size or --seq-len"]
    cheapest = min(fitting, key=lambda p: (p.cost_usd, p.total_seconds))
    fastest = min(fitting, key=lambda p: (p.total_seconds, p.cost_usd))
    deadline_s = None if deadline_hours is None else deadline_hours * 3600
    limits = ([f"finishes within {deadline_hours:g} h"] if deadline_hours is not None else []) + \
        ([f"costs at most ${budget_usd:g}"] if budget_usd is not None else [])
    ok = [p for p in fitting if (deadline_s is None or p.total_seconds <= deadline_s)
          and (budget_usd is None or p.cost_usd <= budget_usd)]
    if not limits:
        pick, reason = cheapest, "cheapest"
    elif ok and deadline_hours is not None:  # a deadline (and maybe a budget): the cheapest plan that meets them
        pick, reason = min(ok, key=lambda p: (p.cost_usd, p.total_seconds)), "cheapest that " + " and ".join(limits)
    elif ok:  # a budget alone: the fastest plan within it
        pick, reason = min(ok, key=lambda p: (p.total_seconds, p.cost_usd)), f"fastest within ${budget_usd:g}"
    else:
        # Nothing meets the limits: the one plan that comes closest on the limit the user named first.
        pick = fastest if deadline_hours is not None else cheapest
        reason = ("fastest" if pick is fastest else "cheapest") + ": no plan " + " and ".join(limits)
        notes.append(f"no plan {' and '.join(limits)}; the fastest takes {fastest.total_seconds / 3600:.2f} h, "
                     f"the cheapest costs ${cheapest.cost_usd:.2f}")
    rec = Recommendation(
        instance=pick.instance, region=pick.region, gpu=pick.gpu, gpu_count=pick.gpu_count, precision=pick.precision,
        dtype=pick.dtype, market=pick.market, train_seconds=pick.train_seconds, total_seconds=pick.total_seconds,
        cost_usd=pick.cost_usd, reason=reason, baseline=None, speedup=None, saving_usd=None, saving_pct=None,
        mixed_precision=mixed_gain(fitting, pick),
    )
    baseline, why = _baseline(fitting, baseline_gpu)
    if baseline is not None:
        rec.baseline = Baseline(instance=baseline.instance, gpu=baseline.gpu, precision=baseline.precision,
                                market=baseline.market, train_seconds=baseline.train_seconds,
                                total_seconds=baseline.total_seconds, cost_usd=baseline.cost_usd, why=why)
        rec.speedup = baseline.total_seconds / pick.total_seconds
        rec.train_speedup = baseline.train_seconds / pick.train_seconds if pick.train_seconds else None
        rec.saving_usd = baseline.cost_usd - pick.cost_usd
        rec.saving_pct = rec.saving_usd / baseline.cost_usd if baseline.cost_usd else None
    return rec, notes


def mixed_gain(fitting: list[Plan], pick: Plan) -> MixedGain | None:
    """fp32 vs mixed on the recommended instance and market, training only: the start-up is the same for both and
    would hide what the precision itself buys."""
    twins = {p.precision: p for p in fitting if (p.instance, p.region, p.market) == (pick.instance, pick.region,
                                                                                        pick.market)}
    fp32, mixed = twins.get("fp32"), twins.get("mixed")
    if fp32 is None or mixed is None or not mixed.train_seconds:
        return None
    return MixedGain(instance=pick.instance, gpu=pick.gpu, market=pick.market, fp32_train_seconds=fp32.train_seconds,
                     mixed_train_seconds=mixed.train_seconds, train_speedup=fp32.train_seconds / mixed.train_seconds,
                     train_saving_usd=(fp32.train_seconds - mixed.train_seconds) / 3600 * pick.price_per_hour)


def _baseline(fitting: list[Plan], gpu: str | None) -> tuple[Plan | None, str]:
    """The fp32 on-demand plan of the cheapest single-GPU instance (of `gpu` when given): where people start before
    they compare. This machine only when asked (`local`): a CPU makes every GPU look like a miracle."""
    pool = [p for p in fitting if p.precision == "fp32" and p.market == "on-demand"]
    if gpu is None:
        pool, why = [p for p in pool if p.instance != "local"], "the cheapest single-GPU instance"
    elif gpu.lower() == "local":
        pool, why = [p for p in pool if p.instance == "local"], "this machine, your --baseline"
        if not pool:
            raise GpuplanError("--baseline local compares with this machine: add --gpu local and --calibrate "
                               "(or --calibration FILE), with --precision fp32 or both")
    else:
        pool, why = [p for p in pool if p.gpu == gpu.lower()], f"the cheapest {gpu.lower()} instance, your --baseline"
        if not any(p.precision == "fp32" for p in fitting):
            raise GpuplanError(f"--baseline {gpu} compares with fp32: use --precision both (or fp32)")
        if not pool:
            raise GpuplanError(f"--baseline {gpu}: no fp32 on-demand plan on that GPU fits in its memory; "
                               "lower --batch-size or --seq-len")
    if not pool:
        return None, ""
    single = [p for p in pool if p.gpu_count == 1] or pool
    return min(single, key=lambda p: (p.price_per_hour, p.cost_usd, p.total_seconds)), why


def with_baseline_offers(offers: Sequence[InstanceOffer], catalog: Catalog,
                         baseline_gpu: str | None) -> tuple[list[InstanceOffer], str | None, list[str]]:
    """`--baseline GPU` checked against the catalog (a typo gets suggestions), its key, and the offers with the
    baseline's instance added when the selection lacks that GPU: `--gpu t4 --baseline v100` compares with a V100."""
    offers = list(offers)
    if baseline_gpu is None or baseline_gpu.lower() == "local":
        return offers, baseline_gpu, []
    try:
        key = find_gpu(catalog, baseline_gpu).key
    except PricingError as e:
        raise GpuplanError(f"--baseline {baseline_gpu}: {e}") from None
    if any(o.gpu == key for o in offers):
        return offers, key, []
    carrying = [o for o in catalog.offers if o.gpu == key and o.on_demand_usd_per_hour is not None]
    if not carrying:
        raise GpuplanError(f"--baseline {baseline_gpu}: no instance in the catalog carries a {key} with an on-demand "
                           "price; see `gpuplan gpus`")
    first = min(carrying, key=lambda o: (o.gpu_count > 1, o.on_demand_usd_per_hour))
    added = [o for o in carrying if o.instance_type == first.instance_type]
    return offers + added, key, [f"--baseline {key}: added {first.instance_type}'s plans to compare with"]


# Past these a plan is still arithmetic, but almost surely not what the user meant.
ABSURD_SECONDS = 365 * 86_400
ABSURD_USD = 1_000_000


def absurd_notes(rec: Recommendation | None) -> list[str]:
    """A warning when even the recommended plan takes years or costs millions: a typo in the workload, usually."""
    if rec is None or (rec.total_seconds < ABSURD_SECONDS and rec.cost_usd < ABSURD_USD):
        return []
    return [f"even the recommended plan takes {rec.total_seconds / ABSURD_SECONDS:,.1f} years and costs "
            f"${rec.cost_usd:,.0f}; check the number of examples, epochs and sequence length"]


def make_estimate(
    workload: Workload,
    offers: Sequence[InstanceOffer],
    catalog: Catalog,
    *,
    calibrations: Sequence[CalibrationResult] = (),
    spot: bool = False,
    deadline_hours: float | None = None,
    budget_usd: float | None = None,
    sort: str = "cost",
    baseline_gpu: str | None = None,
    local: LocalMachine | None = None,
    measured_startup: dict[str, dict[str, float]] | None = None,
) -> Estimate:
    if deadline_hours is not None and not (0 < deadline_hours < math.inf):
        raise GpuplanError(f"--deadline must be a positive number of hours, got {deadline_hours:g}")
    if budget_usd is not None and not (0 < budget_usd < math.inf):
        raise GpuplanError(f"--budget must be a positive amount of USD, got {budget_usd:g}")
    if local is not None and not (0 <= local.price_per_hour < math.inf):
        raise GpuplanError(f"--local-price must be 0 or more USD/hour, got {local.price_per_hour:g}")
    offers, baseline_key, baseline_notes = with_baseline_offers(offers, catalog, baseline_gpu)
    lessons = learn(workload, catalog, calibrations)
    markets: list[Market] = ["on-demand", "spot"] if spot else ["on-demand"]
    plans: list[Plan] = []
    for market in markets:
        for offer in cheapest_region(offers, market):
            for precision in workload.precisions:
                plan = plan_offer(workload, offer, catalog, precision, market, lessons, calibrations,
                                  measured_startup)
                if plan is not None:
                    plans.append(plan)
    notes = list(lessons.notes)
    if local is not None:
        here, local_notes = local_calibration(calibrations)
        plans.extend(plan_local(workload, here, local))
        notes += local_notes
    if spot and not any(p.market == "spot" for p in plans):
        notes.append("no spot price is known for these instances; showing on-demand only")
    mark_pareto(plans)
    rec, rec_notes = recommend(plans, deadline_hours=deadline_hours, budget_usd=budget_usd, baseline_gpu=baseline_key)
    rec_notes = baseline_notes + rec_notes
    gpu_for_notes = rec.gpu if rec is not None and rec.instance != "local" else None
    notes += rec_notes + dataset_notes(workload, catalog, lessons.dataset, gpu_for_notes)
    if rec is not None and gpu_for_notes:
        notes += stack_notes(workload, find_gpu(catalog, rec.gpu), rec.instance, rec.precision)
    notes += absurd_notes(rec)
    return Estimate(workload=workload, plans=rank(plans, sort), recommendation=rec, notes=notes)
