"""The launch plan as the person about to pay for it should read it."""

from __future__ import annotations

from pathlib import Path

from gpuplan.cloud import resources as res
from gpuplan.cloud.bootstrap import BootstrapParams
from gpuplan.cloud.launchplan import INSTALL_SECONDS, PER_PRECISION_SECONDS, LaunchPlan


def _money(v: float | None) -> str:
    from gpuplan.render import usd

    return "price unknown (not in the catalog)" if v is None else usd(v)


def _minutes(seconds: float) -> str:
    return f"~{seconds / 60:.0f} min"


def describe_plan(plan: LaunchPlan) -> list[str]:
    """One line per instance and per thing the launch creates or uses, then the expected and the worst cost."""
    made = "exists, used as it is"
    install = f"the wheel {Path(plan.wheel).name} (shipped via S3)" if plan.wheel else \
        f"this gpuplan, built as a wheel from {plan.build_from} (shipped via S3)" if plan.build_from else \
        BootstrapParams.model_fields["install_spec"].default + " from PyPI"
    new_bucket = (f"to create: private, encrypted, results under {res.RESULTS_PREFIX} expire after "
                  f"{res.RESULT_EXPIRY_DAYS} days")
    new_profile = f"to create: may only read and write s3://{plan.bucket}/{res.RESULTS_PREFIX}*"
    lines = [f"Plan: {len(plan.targets)} {'spot' if plan.spot else 'on-demand'} instance(s) in {plan.region} "
             f"(account {plan.account})"]
    for t in plan.targets:
        price = f"{_money(t.usd_per_hour)}/h {t.price_basis}" if t.usd_per_hour else _money(None)
        lines.append(f"  {t.instance_type}: {price}; about {t.expected_minutes:.0f} min, ~{_money(t.expected_usd)}; "
                     f"at most {_money(t.max_usd)}")
        lines.append(f"    result: {t.result_uri}")
    boot = max(t.startup_seconds for t in plan.targets)
    lines += [
        f"  AMI: {plan.ami.image_id} {plan.ami.name} ({plan.ami.source})".rstrip(),
        f"  bucket: s3://{plan.bucket} ({made if plan.bucket_exists else new_bucket})",
        f"  instance profile: {plan.instance_profile} ({made if plan.instance_profile_exists else new_profile})",
        f"  security group: {res.SECURITY_GROUP_NAME} in {plan.vpc_id}, no inbound rule "
        f"({'exists' if plan.security_group_id else 'to create'})",
        f"  instance: IMDSv2 only, encrypted {plan.root_gib} GiB gp3 root volume, terminates on shutdown; watchdog "
        f"powers it off after {plan.max_minutes} min; gpuplan waits {plan.timeout_minutes:g} min, then terminates it",
        f"  installs {install} and {BootstrapParams.model_fields['tf_spec'].default}",
        f"  runs: gpuplan calibrate {' '.join(plan.calibrate_args)}"
        + (f" --model <your {plan.model_file.name}, shipped via S3>" if plan.model_file else "")
        + (f" --dataset <your {plan.dataset_file.name}, shipped via S3>" if plan.dataset_file else ""),
        f"Expected cost of the calibration: ~{_money(plan.expected_usd)} (boot {_minutes(boot)}, install "
        f"{_minutes(INSTALL_SECONDS)}, {_minutes(PER_PRECISION_SECONDS)} per precision); at most "
        f"{_money(plan.max_usd)} if every watchdog fires.",
    ]
    lines += [f"warning: {t.instance_type}: {t.warning}" for t in plan.targets if t.warning]
    return lines
