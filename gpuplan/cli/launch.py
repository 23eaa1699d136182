"""`gpuplan launch`: measure the workload on real EC2 GPUs, always terminating them; `gpuplan instances`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gpuplan import render
from gpuplan.cli import app
from gpuplan.cli._options import (
    BatchSizeOpt, CatalogOpt, EpochsOpt, FormatOpt, ModelOpt, NumExamplesOpt, PrecisionOpt, SeqLenOpt, WorkloadOpt,
    workload_from_flags,
)
from gpuplan.errors import GpuplanError

AwsRegionOpt = Annotated[str | None, typer.Option("--region", help="AWS region. [default: your AWS profile's, "
                                                  "else us-east-1]")]


@app.command()
def launch(
    instance: Annotated[list[str], typer.Option("--instance", metavar="TYPE", help="EC2 instance type to measure on (repeatable: "
                                                "several run in parallel), e.g. g5.xlarge.")],
    model: ModelOpt = None,
    seq_len: SeqLenOpt = None,
    batch_size: BatchSizeOpt = None,
    num_examples: NumExamplesOpt = None,
    epochs: EpochsOpt = None,
    precision: PrecisionOpt = None,
    workload: WorkloadOpt = None,
    catalog: CatalogOpt = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Timed steps per precision on the instance. "
                                              "[default: calibrate's]")] = None,
    spot: Annotated[bool, typer.Option("--spot", help="Use spot instances (cheaper; AWS may interrupt them).")] = False,
    region: AwsRegionOpt = None,
    bucket: Annotated[str | None, typer.Option("--bucket", help="S3 bucket for results. [default: "
                                               "gpuplan-ACCOUNT-REGION, created private and encrypted]")] = None,
    ami_id: Annotated[str | None, typer.Option("--ami-id", help="AMI to boot. [default: the latest Deep Learning "
                                               "Base AMI]")] = None,
    instance_profile: Annotated[str | None, typer.Option("--instance-profile", help="Existing instance profile "
                                                         "to use. [default: gpuplan-calibration, created]")] = None,
    wheel: Annotated[Path | None, typer.Option("--wheel", help="Install this gpuplan wheel on the instance instead "
                                               "of the PyPI release of this version.")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Minutes to wait for a result before "
                                                  "terminating. [default: --max-minutes + 5]")] = None,
    max_minutes: Annotated[int, typer.Option("--max-minutes", help="Watchdog: the instance powers itself off "
                                             "(and terminates) after this many minutes, whatever happens.")] = 45,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Launch without asking.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and check permissions with EC2's "
                                          "DryRun; start nothing.")] = False,
    calibrate_arg: Annotated[list[str] | None, typer.Option("--calibrate-arg", help="Extra flag for `gpuplan "
                                                            "calibrate` on the instance (repeatable), e.g. "
                                                            "--calibrate-arg=--warmup-steps=2.")] = None,
    save: Annotated[Path | None, typer.Option("--save", help="Also write each calibration result (JSON) into "
                                              "this folder.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Your data: a CSV or JSON Lines file (checked "
                                                "here, shipped via S3) or a Hub dataset name. [default: synthetic]")] = None,
    text_column: Annotated[str, typer.Option("--text-column", help="With --dataset: column with the texts.")] = "text",
    label_column: Annotated[str, typer.Option("--label-column", help="With --dataset: column with the labels.")] = "label",
    fmt: FormatOpt = "table",
) -> None:
    """Measure on EC2 GPUs, always terminate them, print the estimate. Example: gpuplan launch --instance g5.xlarge"""
    from gpuplan.cloud import fleet
    from gpuplan.cloud import launch as cl
    from gpuplan.cloud.aws import make_clients
    from pricing.catalog import load_catalog, select_offers

    render.check_format(fmt)
    wl = workload_from_flags(workload, model, num_examples, epochs, batch_size, seq_len, precision)
    cat = load_catalog(catalog)
    select_offers(cat, instances=instance)  # an unknown type fails here, with the nearest names
    request = cl.new_request(workload=wl, instance_types=instance, region=region, spot=spot, bucket=bucket,
                             ami_id=ami_id, instance_profile=instance_profile, wheel=wheel, timeout_minutes=timeout,
                             max_minutes=max_minutes, steps=steps, extra_calibrate_args=calibrate_arg or [],
                             dataset=dataset, text_column=text_column, label_column=label_column)
    clients = make_clients(region)
    plan = cl.plan_launch(request, cat, clients)
    for line in cl.describe_plan(plan):
        render.note(line)
    if dry_run:
        for line in cl.dry_run(plan, clients):
            render.note(line)
        render.note("Dry run: nothing was created or started.")
        return
    if not yes and not _confirmed():
        render.note("Nothing was launched.")
        raise typer.Exit(1)
    prepared = cl.prepare(plan, clients)
    for item in prepared.created:
        render.note(f"created {item}")
    outcomes = fleet.launch_all(plan, prepared, clients)
    _report(outcomes, wl, cat, plan, spot, fmt, save)


def _confirmed() -> bool:
    import click

    try:
        return typer.confirm("Launch?", default=False, err=True)
    except (click.Abort, typer.Abort):  # stdin closed: a script without --yes
        render.note("")  # end the prompt's line
        raise GpuplanError("no answer to \"Launch?\" (stdin is closed); pass --yes to launch without asking") from None


def _report(outcomes, wl, cat, plan, spot, fmt, save) -> None:  # type: ignore[no-untyped-def]
    """Show failed launches' logs, save the results, print the estimate with the measured rows."""
    from gpuplan.cli.estimate import render_estimate
    from gpuplan.cloud.launch import complete_device
    from gpuplan.cloud.wait import LaunchFailed
    from gpuplan.plan import make_estimate

    results = []
    for o in outcomes:
        if isinstance(o.error, LaunchFailed) and o.error.log_tail:
            render.note(f"--- last lines of {o.target.instance_type}'s log ({o.error.log_uri}) ---")
            for line in o.error.log_tail:
                render.note(f"  {line}")
        if o.result is not None:
            results.append(complete_device(o.result, cat, o.target.instance_type))
            if save is not None:
                save.mkdir(parents=True, exist_ok=True)
                path = save / f"{o.target.launch_id}-{o.target.instance_type}.json"
                results[-1].save(path)
                render.note(f"wrote {path}")
    failed = [o for o in outcomes if o.result is None]
    for o in failed if results else []:
        render.note(f"{o.target.instance_type}: {o.error}")
    if not results:
        if len(failed) == 1 and failed[0].error is not None:
            raise failed[0].error  # itself, so that GPUPLAN_DEBUG=1 shows where it came from
        raise GpuplanError("; ".join(f"{o.target.instance_type}: {o.error}" for o in failed))
    offers = [o for o in cat.offers if o.region == plan.region] or list(cat.offers)
    render_estimate(make_estimate(wl, offers, cat, calibrations=results, spot=spot), fmt)
    if failed:
        raise GpuplanError(f"{len(failed)} of {len(outcomes)} launches gave no result (see above); the estimate "
                           "uses the others")


instances_app = typer.Typer(help="The EC2 instances gpuplan started: list them, terminate them.",
                            no_args_is_help=False, rich_markup_mode=None)
app.add_typer(instances_app, name="instances")

INSTANCE_COLUMNS = [
    ("instance_id", "instance id", None), ("instance_type", "type", None), ("state", "state", None),
    ("market", "market", None), ("age_seconds", "age", render.duration), ("usd_per_hour", "$/h", render.usd),
    ("usd_so_far", "cost so far", render.usd), ("launch_id", "launch id", None), ("result_uri", "result", None),
]


@instances_app.callback(invoke_without_command=True)
def instances(
    ctx: typer.Context,
    region: AwsRegionOpt = None,
    ended: Annotated[bool, typer.Option("--ended", help="Also list terminated instances (EC2 keeps them an hour "
                                        "or so).")] = False,
    catalog: CatalogOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """List the instances gpuplan started, with age and cost so far. Example: gpuplan instances"""
    if ctx.invoked_subcommand is not None:
        return
    from gpuplan.cloud.aws import make_clients
    from gpuplan.cloud.instances import list_instances
    from pricing.catalog import load_catalog

    render.check_format(fmt)
    rows = [r.model_dump(mode="json") for r in list_instances(make_clients(region), load_catalog(catalog),
                                                             include_ended=ended)]
    if fmt == "json":
        render.out(render.dumps_json(rows))
    elif fmt == "csv":
        render.out(render.to_csv(rows, [k for k, _, _ in INSTANCE_COLUMNS] + ["launched_at", "region"]))
    elif rows:
        render.out(render.table(rows, INSTANCE_COLUMNS))
    else:
        render.note("No gpuplan instances" + ("" if ended else " running") + ".")


@instances_app.command("terminate")
def instances_terminate(
    instance_id: Annotated[list[str] | None, typer.Argument(help="Instance ids, e.g. i-0abc...")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Terminate every gpuplan instance in the region.")] = False,
    region: AwsRegionOpt = None,
    catalog: CatalogOpt = None,
) -> None:
    """Terminate gpuplan instances. Example: gpuplan instances terminate --all"""
    from gpuplan.cloud.aws import make_clients
    from gpuplan.cloud.instances import terminate
    from pricing.catalog import load_catalog

    if bool(instance_id) == all_:
        raise GpuplanError("give instance ids or --all (not both)")
    ended = terminate(make_clients(region), load_catalog(catalog), instance_id or [], all_active=all_)
    render.note(f"terminating {', '.join(ended)}" if ended else "Nothing to terminate: no such instance is running.")
