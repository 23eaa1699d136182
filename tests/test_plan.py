"""Plans on a three-row catalog: cost arithmetic, ranking, Pareto front, recommendation, calibration."""

from __future__ import annotations

import datetime as dt

import pytest

from gpuplan.measurement import CalibrationResult, DeviceInfo, RunResult
from gpuplan.errors import GpuplanError
from gpuplan.perf import stacks


def step_time(*args, **kwargs):
    """The model the default workload (stack keras) is planned with."""
    return stacks.step_time("keras", *args, **kwargs)
from gpuplan.plan import LocalMachine, billed, make_estimate, mark_pareto, total_steps
from gpuplan.workload import build_workload
from pricing.models import Catalog, GpuSpec, InstanceOffer

SLOW = GpuSpec(key="slow", name="Slow", architecture="Turing", compute_capability=7.5, memory_gib=16,
               fp32_tflops=8, fp16_tflops=65, memory_bandwidth_gbs=320)
FAST = GpuSpec(key="fast", name="Fast", architecture="Ampere", compute_capability=8.0, memory_gib=40,
               fp32_tflops=19.5, tf32_tflops=156, fp16_tflops=312, bf16_tflops=312, memory_bandwidth_gbs=1555)
TINY = GpuSpec(key="tiny", name="Tiny", architecture="Ampere", compute_capability=8.6, memory_gib=4,
               fp32_tflops=35, tf32_tflops=35, fp16_tflops=70, bf16_tflops=70, memory_bandwidth_gbs=600)


def offer(name, gpu, price, spot=None, count=1, region="us-east-1", startup=300.0):
    return InstanceOffer(instance_type=name, gpu=gpu, gpu_count=count, vcpus=8, memory_gib=32, region=region,
                         on_demand_usd_per_hour=price, spot_usd_per_hour=spot, startup_seconds=startup,
                         allreduce_gbs=100 if count > 1 else None, interconnect="nvlink3" if count > 1 else "none")


CATALOG = Catalog(gpus=[SLOW, FAST, TINY], offers=[
    offer("slow.x", "slow", 0.5, spot=0.2), offer("fast.x", "fast", 4.0, spot=1.5), offer("tiny.x", "tiny", 0.1),
])


def estimate(**kw):
    wl = kw.pop("workload", None) or build_workload(num_examples=10000, epochs=1, batch_size=32, seq_len=128)
    return make_estimate(wl, kw.pop("offers", CATALOG.offers), kw.pop("catalog", CATALOG), **kw)


def test_billing_is_per_second_with_a_60_second_minimum():
    assert billed(10, 3.6) == (60, pytest.approx(0.06))
    assert billed(3600.2, 3.6) == (3601, pytest.approx(3.601))


def test_steps_round_up_per_epoch():
    wl = build_workload(num_examples=100, epochs=2, batch_size=32)
    assert total_steps(wl, 1) == 8  # 4 steps an epoch, the last one partial
    assert total_steps(wl, 4) == 2


def test_plan_time_and_cost_follow_from_the_step_time():
    est = estimate()
    p = next(p for p in est.plans if p.instance == "slow.x" and p.precision == "fp32")
    step = step_time(build_workload().arch, SLOW, "fp32", 32, 128).seconds
    assert p.step_seconds == pytest.approx(step)
    assert p.steps == 313
    assert p.hours * 3600 == pytest.approx(300 + 313 * step)
    assert p.cost_usd == pytest.approx(p.billed_seconds / 3600 * 0.5)
    assert p.samples_per_second == pytest.approx(32 / step)
    assert p.source == "model" and p.market == "on-demand"


def test_plans_that_do_not_fit_are_shown_last_and_never_recommended():
    est = estimate()
    tiny = [p for p in est.plans if p.gpu == "tiny"]
    assert tiny and not any(p.fits_memory for p in tiny)
    assert est.plans[-len(tiny):] == tiny
    assert est.recommendation.gpu != "tiny"  # it would be the cheapest by far
    assert "--batch-size" in tiny[0].notes[0]


def test_sort_by_cost_or_time():
    by_cost = [p for p in estimate(sort="cost").plans if p.fits_memory]
    by_time = [p for p in estimate(sort="time").plans if p.fits_memory]
    assert [p.cost_usd for p in by_cost] == sorted(p.cost_usd for p in by_cost)
    assert [p.hours for p in by_time] == sorted(p.hours for p in by_time)


def test_pareto_front_is_the_set_nothing_beats_on_both():
    est = estimate(spot=True)
    fitting = [p for p in est.plans if p.fits_memory]
    for p in fitting:
        dominated = any(q.hours <= p.hours and q.cost_usd <= p.cost_usd and (q.hours, q.cost_usd) != (p.hours, p.cost_usd)
                        for q in fitting)
        assert p.pareto == (not dominated)
    assert any(p.pareto for p in fitting)
    assert not any(p.pareto for p in est.plans if not p.fits_memory)


def test_pareto_on_hand_made_points():
    est = estimate()
    a, b, c = est.plans[:3]
    for p, (h, cost) in zip((a, b, c), ((1, 5), (2, 2), (3, 3))):
        p.total_seconds, p.cost_usd, p.fits_memory = h * 3600, cost, True
    mark_pareto([a, b, c])
    assert (a.pareto, b.pareto, c.pareto) == (True, True, False)


def test_spot_adds_spot_plans_at_the_spot_price():
    est = estimate(spot=True)
    spot = [p for p in est.plans if p.market == "spot"]
    assert {p.instance for p in spot} == {"slow.x", "fast.x"}  # tiny.x has no spot price
    assert all(p.price_per_hour in (0.2, 1.5) for p in spot)


def test_recommendation_is_the_cheapest_and_compares_with_the_cheapest_single_gpu_instance_in_fp32():
    est = estimate(offers=[o for o in CATALOG.offers if o.gpu != "tiny"])  # tiny.x: cheaper, but nothing fits
    fitting = [p for p in est.plans if p.fits_memory]
    cheapest = min(fitting, key=lambda p: p.cost_usd)
    rec = est.recommendation
    assert (rec.instance, rec.precision) == (cheapest.instance, cheapest.precision)
    base = next(p for p in fitting if (p.instance, p.precision) == ("slow.x", "fp32"))  # $0.5/h beats fast.x's $4
    assert (rec.baseline.instance, rec.baseline.precision, rec.baseline.market) == ("slow.x", "fp32", "on-demand")
    assert rec.baseline.why == "the cheapest single-GPU instance"
    assert rec.speedup == pytest.approx(base.hours / rec.hours)
    assert rec.train_speedup == pytest.approx(base.train_seconds / rec.train_seconds)
    assert rec.saving_usd == pytest.approx(base.cost_usd - rec.cost_usd)


def test_mixed_precision_gain_is_training_only_on_the_recommended_instance():
    est = estimate(offers=[o for o in CATALOG.offers if o.gpu != "tiny"])
    rec = est.recommendation
    by = {p.precision: p for p in est.plans if (p.instance, p.market) == (rec.instance, rec.market)}
    gain = rec.mixed_precision
    assert gain.train_speedup == pytest.approx(by["fp32"].train_seconds / by["mixed"].train_seconds)
    assert gain.train_saving_usd == pytest.approx(
        (by["fp32"].train_seconds - by["mixed"].train_seconds) / 3600 * by["mixed"].price_per_hour)
    assert estimate(workload=build_workload(precision="fp32")).recommendation.mixed_precision is None


def test_the_local_machine_is_the_baseline_only_when_asked(tmp_path):
    wl = build_workload(num_examples=3200, epochs=1, batch_size=32, seq_len=128)
    cal = _calibration(None, 9.0, 6.0, kind="cpu")
    default = estimate(workload=wl, calibrations=[cal], local=LocalMachine())
    assert default.recommendation.baseline.instance != "local"
    asked = estimate(workload=wl, calibrations=[cal], local=LocalMachine(), baseline_gpu="local")
    assert asked.recommendation.baseline.instance == "local"
    with pytest.raises(GpuplanError, match="--baseline local compares with this machine: add --gpu local"):
        estimate(baseline_gpu="local")


def test_deadline_picks_the_cheapest_plan_that_makes_it():
    wl = build_workload(num_examples=200000, epochs=3)
    free = estimate(workload=wl)
    deadline = free.recommendation.hours * 0.6
    est = estimate(workload=wl, deadline_hours=deadline)
    assert est.recommendation.hours <= deadline
    ok = [p for p in est.plans if p.fits_memory and p.hours <= deadline]
    assert est.recommendation.cost_usd == min(p.cost_usd for p in ok)


def test_impossible_deadline_recommends_the_fastest_and_says_so():
    est = estimate(deadline_hours=0.01)
    assert "no plan finishes within 0.01 h; the fastest takes" in " ".join(est.notes)
    fitting = [p for p in est.plans if p.fits_memory]
    assert est.recommendation.hours == min(p.hours for p in fitting)


def test_budget_picks_the_fastest_plan_within_it():
    wl = build_workload(num_examples=200000, epochs=3)
    plans = [p for p in estimate(workload=wl).plans if p.fits_memory]
    budget = sorted(p.cost_usd for p in plans)[len(plans) // 2]
    rec = estimate(workload=wl, budget_usd=budget).recommendation
    assert rec.cost_usd <= budget
    assert rec.hours == min(p.hours for p in plans if p.cost_usd <= budget)


def test_deadline_and_budget_together_must_both_hold():
    wl = build_workload(num_examples=200000, epochs=3)
    plans = [p for p in estimate(workload=wl).plans if p.fits_memory]
    deadline = sorted(p.hours for p in plans)[len(plans) // 2]
    within = [p for p in plans if p.hours <= deadline]
    budget = sorted(p.cost_usd for p in within)[-1]  # the dearest plan that makes the deadline: a real constraint
    rec = estimate(workload=wl, deadline_hours=deadline, budget_usd=budget).recommendation
    assert rec.hours <= deadline and rec.cost_usd <= budget
    assert rec.reason == f"cheapest that finishes within {deadline:g} h and costs at most ${budget:g}"
    impossible = estimate(workload=wl, deadline_hours=deadline, budget_usd=0.0001)
    assert "no plan finishes within" in " ".join(impossible.notes) and "costs at most $0.0001" in " ".join(impossible.notes)


def test_baseline_gpu_and_bad_limits():
    rec = estimate(baseline_gpu="FAST").recommendation
    assert rec.baseline.instance == "fast.x" and rec.baseline.precision == "fp32"
    assert rec.baseline.why == "the cheapest fast instance, your --baseline"
    with pytest.raises(GpuplanError, match="--baseline tiny: no fp32 on-demand plan on that GPU fits"):
        estimate(baseline_gpu="tiny")
    with pytest.raises(GpuplanError, match="--baseline fats: unknown GPU 'fats'. Did you mean: fast"):
        estimate(baseline_gpu="fats")
    added = estimate(offers=[o for o in CATALOG.offers if o.gpu == "slow"], baseline_gpu="fast")
    assert added.recommendation.baseline.instance == "fast.x"
    assert {p.instance for p in added.plans} == {"slow.x", "fast.x"}
    assert "--baseline fast: added fast.x's plans to compare with" in added.notes
    with pytest.raises(GpuplanError, match="--baseline fast compares with fp32: use --precision both"):
        estimate(workload=build_workload(precision="mixed"), baseline_gpu="fast")
    with pytest.raises(GpuplanError, match="--deadline must be a positive"):
        estimate(deadline_hours=0)
    with pytest.raises(GpuplanError, match="--budget must be a positive"):
        estimate(budget_usd=-1)


def test_each_instance_is_priced_in_its_cheapest_region():
    offers = [offer("slow.x", "slow", 0.5), offer("slow.x", "slow", 0.4, region="eu-west-1"), offer("fast.x", "fast", 4.0)]
    est = estimate(offers=offers)
    slow = [p for p in est.plans if p.instance == "slow.x"]
    assert {p.region for p in slow} == {"eu-west-1"} and {p.price_per_hour for p in slow} == {0.4}


def test_multi_gpu_instances_scale_below_linear():
    offers = [offer("fast.x", "fast", 4.0), offer("fast.8x", "fast", 32.0, count=8)]
    est = estimate(offers=offers, workload=build_workload(num_examples=10000, epochs=1, precision="fp32"))
    one, eight = (next(p for p in est.plans if p.instance == i) for i in ("fast.x", "fast.8x"))
    assert 0 < eight.scaling_efficiency < 1
    assert eight.samples_per_second == pytest.approx(8 * one.samples_per_second * eight.scaling_efficiency)
    assert eight.steps == -(-10000 // (32 * 8))


def _calibration(gpu_key, step_fp32, step_mixed, kind="gpu", batch=32, seq=128):
    wl = build_workload(batch_size=batch, seq_len=seq)
    runs = [RunResult(precision=p, dtype="float32" if p == "fp32" else "mixed_bfloat16", steps=10, batch_size=batch,
                      seq_len=seq, warmup_seconds=20.0, step_seconds=s, samples_per_second=batch / s)
            for p, s in (("fp32", step_fp32), ("mixed", step_mixed)) if s is not None]
    return CalibrationResult(created_at=dt.datetime(2026, 11, 24), gpuplan_version="0.1.0",
                             device=DeviceInfo(kind=kind, name="test device", gpu_key=gpu_key), workload=wl, runs=runs)


def test_a_calibration_replaces_the_model_on_its_gpu_and_corrects_the_others():
    wl = build_workload(num_examples=10000, epochs=1)
    model_fast = step_time(wl.arch, FAST, "mixed", 32, 128).seconds
    model_slow = step_time(wl.arch, SLOW, "mixed", 32, 128).seconds
    cal = _calibration("fast", None, model_fast * 1.5)  # measured 1.5x slower than the model predicts
    est = estimate(workload=wl, calibrations=[cal])
    fast = next(p for p in est.plans if p.instance == "fast.x" and p.precision == "mixed")
    slow = next(p for p in est.plans if p.instance == "slow.x" and p.precision == "mixed")
    assert fast.source == "measured" and fast.step_seconds == pytest.approx(model_fast * 1.5)
    assert fast.warmup_seconds == 20.0
    assert slow.source == "model" and slow.correction == pytest.approx(1.5)
    assert slow.step_seconds == pytest.approx(model_slow * 1.5)
    assert "model corrected by calibration" in " ".join(est.notes)


def test_a_calibration_at_another_batch_is_carried_to_the_workload():
    wl = build_workload(num_examples=10000, epochs=1, batch_size=64)
    at16 = step_time(wl.arch, FAST, "fp32", 16, 128).seconds
    at64 = step_time(wl.arch, FAST, "fp32", 64, 128).seconds
    est = estimate(workload=wl, calibrations=[_calibration("fast", at16 * 2, None, batch=16)])
    fast = next(p for p in est.plans if p.instance == "fast.x" and p.precision == "fp32")
    assert fast.step_seconds == pytest.approx(at64 * 2)


def test_local_plan_uses_the_measured_step_time():
    wl = build_workload(num_examples=320, epochs=1)
    cal = _calibration(None, 2.0, 1.5, kind="cpu")
    est = estimate(workload=wl, offers=[], calibrations=[cal], local=LocalMachine(price_per_hour=0.1))
    local = {p.precision: p for p in est.plans}
    assert local["fp32"].hours * 3600 == pytest.approx(20.0 + 10 * 2.0)
    assert local["mixed"].cost_usd == pytest.approx((20.0 + 15.0) / 3600 * 0.1)
    assert est.recommendation.instance == "local"


def test_local_plan_counts_the_warm_up_steps_once_and_uses_the_mean_step():
    wl = build_workload(num_examples=320, epochs=1)
    cal = _calibration(None, 2.0, 1.5, kind="cpu")
    for r in cal.runs:
        r.warmup_steps, r.step_seconds_mean = 2, r.step_seconds * 1.1
    est = estimate(workload=wl, offers=[], calibrations=[cal], local=LocalMachine())
    fp32 = next(p for p in est.plans if p.precision == "fp32")
    assert fp32.hours * 3600 == pytest.approx(20.0 + 8 * 2.2)


def test_local_needs_a_matching_calibration():
    with pytest.raises(GpuplanError, match="--gpu local needs a measurement"):
        estimate(offers=[], local=LocalMachine())
    cal = _calibration(None, 2.0, 1.5, kind="cpu", batch=8)
    with pytest.raises(GpuplanError, match="rerun with --calibrate"):
        estimate(offers=[], calibrations=[cal], local=LocalMachine())


def _with(cal, **run_fields):
    for r in cal.runs:
        for k, v in run_fields.items():
            setattr(r, k, v)
    return cal


def test_a_cpu_calibration_contributes_its_traced_flops():
    from gpuplan.perf.flops import train_flops_per_step

    wl = build_workload(num_examples=10000, epochs=1)
    analytic = train_flops_per_step(wl.arch, 32, 128)
    cal = _with(_calibration(None, 2.0, 1.5, kind="cpu"), flops_per_step=analytic * 1.2)
    plain = next(p for p in estimate(workload=wl).plans if p.instance == "fast.x" and p.precision == "fp32")
    est = estimate(workload=wl, calibrations=[cal])
    scaled = next(p for p in est.plans if p.instance == "fast.x" and p.precision == "fp32")
    assert scaled.source == "model" and scaled.step_seconds > plain.step_seconds
    assert "traced graph's FLOPs: x1.20" in " ".join(est.notes)
    wild = _with(_calibration(None, 2.0, 1.5, kind="cpu"), flops_per_step=analytic * 10)
    assert "not used" in " ".join(estimate(workload=wl, calibrations=[wild]).notes)


def test_measured_gpu_memory_decides_what_fits():
    from gpuplan.perf.memory import footprint

    wl = build_workload(num_examples=10000, epochs=1, batch_size=32)
    need = footprint(wl.arch, 32, 128, True).total_bytes
    cal = _with(_calibration("fast", None, 0.05), peak_memory_bytes=int(need * 2.5))
    est = estimate(workload=wl, calibrations=[cal])
    slow = next(p for p in est.plans if p.instance == "slow.x" and p.precision == "mixed")
    assert slow.memory_bytes == pytest.approx(need * 2.5)
    assert not slow.fits_memory  # 2.5x the model's 7 GiB no longer fits in 16 GiB


def test_dataset_statistics_become_advice():
    from gpuplan.workload import DatasetStats

    wl = build_workload(num_examples=10000, epochs=1)
    cal = _calibration(None, 2.0, 1.5, kind="cpu")
    cal.device.host_cpus = 2
    cal.dataset = DatasetStats(num_examples=500, token_len_p50=40, token_len_p90=150, token_len_max=900,
                               truncated_share=0.2, mean_padded_len=60, tokenize_examples_per_second=40)
    est = estimate(workload=wl, calibrations=[cal])
    text = " ".join(est.notes)
    assert "20% of your texts are longer than seq-len 128" in text
    assert "padding each batch to its longest text (mean 60 tokens, not 128)" in text
    fast = next(p for p in est.plans if p.instance == "fast.x" and p.precision == "mixed")
    slow = next(p for p in est.plans if p.instance == "slow.x" and p.precision == "fp32")
    # 8 vCPUs x 20 examples/s each = 160/s: enough for the slow GPU, not for the fast one.
    assert fast.samples_per_second > 160 > slow.samples_per_second
    assert fast.input_bound and "tokenize once before training" in fast.notes[-1]
    assert not slow.input_bound


def test_local_plan_uses_the_newest_measurement_of_this_machine_and_says_so():
    wl = build_workload(num_examples=320, epochs=1)
    old, new = _calibration(None, 2.0, 1.5, kind="cpu"), _calibration(None, 4.0, 3.0, kind="cpu")
    new.created_at = old.created_at + dt.timedelta(hours=1)
    ec2 = _calibration("fast", 0.5, 0.3)
    ec2.device.instance_type = "g5.xlarge"  # measured by `gpuplan launch`: not this machine
    est = estimate(workload=wl, offers=[], calibrations=[new, old, ec2], local=LocalMachine())
    fp32 = next(p for p in est.plans if p.precision == "fp32")
    assert fp32.step_seconds == pytest.approx(4.0)
    assert "2 measurements of this machine given; the plan uses the newest" in " ".join(est.notes)
    with pytest.raises(GpuplanError, match="--gpu local needs a measurement of this machine"):
        estimate(workload=wl, offers=[], calibrations=[ec2], local=LocalMachine())
