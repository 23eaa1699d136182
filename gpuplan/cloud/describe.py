"""The launch plan as the person about to pay for it should read it."""

from __future__ import annotations

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
    account = "without AWS credentials: nothing in AWS checked" if plan.offline else f"account {plan.account}"
    new_bucket = (f"to create: private, encrypted, owner-checked, results under {res.RESULTS_PREFIX} expire after "
                  f"{res.RESULT_EXPIRY_DAYS} days")
    lines = [f"Plan: {len(plan.targets)} {'spot' if plan.spot else 'on-demand'} instance(s) in {plan.region} "
             f"({account})"]
    for t in plan.targets:
        price = f"{_money(t.usd_per_hour)}/h {t.price_basis}" if t.usd_per_hour else _money(None)
        lines.append(f"  {t.instance_type}: {price}; about {t.expected_minutes:.0f} min, ~{_money(t.expected_usd)}; "
                     f"at most {_money(t.max_usd)}")
        lines.append(f"    AMI: {' '.join(x for x in (t.ami.image_id, t.ami.name) if x)} ({t.ami.source})")
        lines.append(f"    result: {t.result_uri}")
    boot = max(t.startup_seconds for t in plan.targets)
    access = (f"instance profile {plan.instance_profile} (exists; its role reads and writes "
              f"s3://{plan.bucket}/{res.RESULTS_PREFIX}*)" if plan.instance_profile else
              f"no IAM role: the instance gets presigned URLs (GET its inputs, PUT its result and log, this launch's "
              f"keys only) that expire after {plan.url_minutes:.0f} min")
    lines += [
        f"  bucket: s3://{plan.bucket} ({'exists, yours, used as it is' if plan.bucket_exists else new_bucket})",
        f"  access: {access}",
        f"  security group: {res.SECURITY_GROUP_NAME} in {plan.vpc_id}, no inbound rule "
        f"({'exists' if plan.security_group_id else 'to create'})",
        f"  instance: IMDSv2 only, encrypted gp3 root volume, terminates on shutdown; checks its GPU first; watchdog "
        f"(systemd timer, kept across a reboot) powers it off after {plan.max_minutes} min; gpuplan waits "
        f"{plan.timeout_minutes:g} min, then terminates it",
        f"  installs this gpuplan ({plan.code_source}, shipped via S3, never from an index) and "
        f"{BootstrapParams.model_fields['tf_spec'].default}",
        f"  runs: gpuplan calibrate {' '.join(plan.calibrate_args)}"
        + (f" --model <your {plan.model_file.name}, shipped via S3>" if plan.model_file else "")
        + (f" --dataset <your {plan.dataset_file.name}, shipped via S3>" if plan.dataset_file else ""),
        f"Expected cost of the calibration: ~{_money(plan.expected_usd)} (boot {_minutes(boot)}, install "
        f"{_minutes(INSTALL_SECONDS)}, {_minutes(PER_PRECISION_SECONDS)} per precision); at most "
        f"{_money(plan.max_usd)} if every watchdog fires.",
    ]
    lines += plan.notes
    lines += [f"warning: {t.instance_type}: {t.warning}" for t in plan.targets if t.warning]
    return lines
