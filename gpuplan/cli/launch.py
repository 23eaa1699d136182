"""`gpuplan launch`: measure the workload on real EC2 GPUs, always terminating them; `gpuplan instances`."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gpuplan import render
from gpuplan.cli import app, examples
from gpuplan.cli._options import (
    BatchSizeOpt, CatalogOpt, EpochsOpt, FormatOpt, LabelColumnOpt, ModelOpt, NumExamplesOpt, PrecisionOpt,
    SeqLenOpt, StepsOpt, TextColumnOpt, WorkloadOpt, workload_from_flags,
)
from gpuplan.errors import GpuplanError
from gpuplan.cloud.request import MAX_TIMEOUT_MINUTES, MAX_WATCHDOG_MINUTES
from pricing.models import DEFAULT_REGION

if TYPE_CHECKING:
    from gpuplan.cloud.fleet import InstanceStatus

AwsRegionOpt = Annotated[str | None, typer.Option("--region", help="AWS region. [default: your AWS profile's, "
                                                  f"else {DEFAULT_REGION}]")]
InstanceOpt = Annotated[list[str], typer.Option("--instance", metavar="TYPE", help="EC2 instance type to measure on "
                                                "(repeatable: several run in parallel), e.g. g5.xlarge.")]
SpotOpt = Annotated[bool, typer.Option("--spot", help="Use spot instances (cheaper; AWS may interrupt them).")]
BucketOpt = Annotated[str | None, typer.Option("--bucket", help="S3 bucket for results (must be your account's). "
                                               "[default: your gpuplan-ACCOUNT-REGION-* bucket, else a new one: "
                                               "private, encrypted, random suffix]")]
AmiOpt = Annotated[str | None, typer.Option("--ami-id", help="AMI to boot. [default: the latest Deep Learning Base "
                                            "AMI whose NVIDIA driver supports the GPU (proprietary driver for P3/G3)]")]
ProfileOpt = Annotated[str | None, typer.Option("--instance-profile", help="An existing instance profile to give the "
                                                "instance, for organisations that require a role; its role needs "
                                                "s3:GetObject and s3:PutObject on the bucket's gpuplan/*. "
                                                "[default: none; the instance gets presigned URLs]")]
WheelOpt = Annotated[Path | None, typer.Option("--wheel", help="Install this gpuplan wheel on the instance. "
                                               "[default: this gpuplan, built from the checkout or packed from the "
                                               "installed files]")]
TimeoutOpt = Annotated[float | None, typer.Option("--timeout", help=f"Minutes to wait for a result before "
                                                  f"terminating, at most {MAX_TIMEOUT_MINUTES}. "
                                                  "[default: --max-minutes + 5]")]
MaxMinutesOpt = Annotated[int, typer.Option("--max-minutes", help="Watchdog: the instance powers itself off (and "
                                            "terminates) after this many minutes, whatever happens; at most "
                                            f"{MAX_WATCHDOG_MINUTES}.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Launch without asking.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan, its cost, the user data (stdout) and "
                                         "the IAM policy it needs; with credentials, run every check the launch runs "
                                         "(EC2's DryRun included). Creates and starts nothing.")]
CalibrateArgOpt = Annotated[list[str] | None, typer.Option("--calibrate-arg", help="Extra flag for `gpuplan calibrate` "
                                                           "on the instance (repeatable), e.g. "
                                                           "--calibrate-arg=--warmup-steps=2.")]
SaveOpt = Annotated[Path | None, typer.Option("--save", help="Also write each calibration result (JSON) into this "
                                              "folder.")]
LaunchDatasetOpt = Annotated[str | None, typer.Option("--dataset", help="Your data: a CSV or JSON Lines file (checked "
                                                      "here, shipped via S3) or a Hub dataset name. [default: "
                                                      "synthetic]")]


@app.command(epilog=examples(
    "gpuplan launch --instance g5.xlarge --dry-run",
    "gpuplan launch --instance g5.xlarge --spot --save results/",
    "gpuplan launch --instance g4dn.xlarge --instance g5.xlarge --dataset reviews.csv",
))
def launch(
    ctx: typer.Context, instance: InstanceOpt, model: ModelOpt = None, seq_len: SeqLenOpt = None,
    batch_size: BatchSizeOpt = None, num_examples: NumExamplesOpt = None, epochs: EpochsOpt = None,
    precision: PrecisionOpt = None, workload: WorkloadOpt = None, catalog: CatalogOpt = None, steps: StepsOpt = None,
    spot: SpotOpt = False, region: AwsRegionOpt = None, bucket: BucketOpt = None, ami_id: AmiOpt = None,
    instance_profile: ProfileOpt = None, wheel: WheelOpt = None, timeout: TimeoutOpt = None,
    max_minutes: MaxMinutesOpt = 45, yes: YesOpt = False, dry_run: DryRunOpt = False,
    calibrate_arg: CalibrateArgOpt = None, save: SaveOpt = None, dataset: LaunchDatasetOpt = None,
    text_column: TextColumnOpt = "text", label_column: LabelColumnOpt = "label", fmt: FormatOpt = "table",
) -> None:
    """Measure on EC2 GPUs, always terminate them, print the estimate."""
    from gpuplan.cloud import fleet, launchplan, report
    from gpuplan.cloud.aws import make_clients
    from gpuplan.cloud.describe import describe_plan
    from gpuplan.cloud.request import new_request
    from gpuplan.cloud.settings import LaunchSettings
    from gpuplan.startup_cache import record_phases
    from pricing.catalog import load_catalog, select_offers

    render.check_format(fmt)
    # Tests hand in faster polling and moto's AMI names (CliRunner.invoke(..., obj=LaunchSettings(...))).
    settings = ctx.obj if isinstance(ctx.obj, LaunchSettings) else LaunchSettings()
    wl = workload_from_flags(workload, model, num_examples, epochs, batch_size, seq_len, precision)
    cat = load_catalog(catalog, notes=render.note)
    select_offers(cat, instances=instance)  # an unknown type fails here, with the nearest names
    request = new_request(workload=wl, instance_types=instance, region=region, spot=spot, bucket=bucket,
                          ami_id=ami_id, instance_profile=instance_profile, wheel=wheel, timeout_minutes=timeout,
                          max_minutes=max_minutes, steps=steps, extra_calibrate_args=calibrate_arg or [],
                          dataset=dataset, text_column=text_column, label_column=label_column, save=save)
    clients = make_clients(region)
    if dry_run:
        _dry_run(request, cat, clients, settings)
        return
    plan = launchplan.plan_launch(request, cat, clients, settings)
    _notes(describe_plan(plan))
    if not yes and not _confirmed():
        render.note("Nothing was launched.")
        raise typer.Exit(1)
    prepared = _prepare(plan, clients)
    with _ProgressView() as view:
        outcomes = fleet.launch_all(plan, prepared, clients, listener=view, settings=settings)
    rep = report.collect(outcomes, cat)
    _notes(rep.phase_lines())
    for instance_type, phases in rep.startup_phases():
        record_phases(instance_type, phases)  # the start-up model uses the family's measured phases from now on
    _render_report(rep, lambda r: report.launch_estimate(r, wl, cat, plan, spot), fmt, save)


def _prepare(plan, clients):  # type: ignore[no-untyped-def]
    """The account set-up; a Ctrl-C here starts nothing and says what already exists (all of it free to keep)."""
    from gpuplan.cloud import uploads

    created: list[str] = []
    try:
        prepared = uploads.prepare(plan, clients, created)
    except KeyboardInterrupt:
        kept = f"; created {', '.join(created)} (kept: they cost nothing while empty)" if created else ""
        raise GpuplanError(f"interrupted during set-up; no instance was started{kept}", exit_code=130) from None
    _notes(f"created {item}" for item in prepared.created)
    return prepared


def _dry_run(request, cat, clients, settings) -> None:  # type: ignore[no-untyped-def]
    """The plan, the user data and the policy; every AWS check of the launch when there are credentials."""
    from gpuplan.cloud import launchplan, start, uploads
    from gpuplan.cloud.describe import describe_plan
    from gpuplan.cloud.policy import policy_json

    offline = clients.credentials() is None
    plan = launchplan.plan_launch(request, cat, None if offline else clients, settings)
    _notes(describe_plan(plan))
    if offline:
        _notes([f"Skipped without AWS credentials: {', '.join(launchplan.OFFLINE_SKIPPED)}."])
    else:
        _notes(start.dry_run(plan, uploads.dry_prepared(plan, clients), clients))
    shown = uploads.dry_prepared(plan, None)  # the URLs as placeholders: real ones would grant access
    first = plan.targets[0]
    script = start.user_data(plan, shown, first)
    sys.stdout.write(script)
    _notes([f"The user data of {first.instance_type} ({len(script.encode())} bytes with placeholder URLs) is on "
            "stdout.", "The permissions this launch needs (an IAM policy for your user or role):",
            *policy_json(request.bucket or "gpuplan-*", bool(request.instance_profile)).splitlines(),
            "Dry run: nothing was created or started."])


def _notes(lines) -> None:  # type: ignore[no-untyped-def]
    for line in lines:
        render.note(line)


def _confirmed() -> bool:
    import click

    try:
        return typer.confirm("Launch?", default=False, err=True)
    except (click.Abort, typer.Abort):  # stdin closed: a script without --yes
        render.note("")  # end the prompt's line
        raise GpuplanError("no answer to \"Launch?\" (stdin is closed); pass --yes to launch without asking") from None


def _render_report(rep, estimate, fmt: str, save: Path | None) -> None:  # type: ignore[no-untyped-def]
    """Failed launches' logs, the saved results, then the estimate with the measured rows (or the failure)."""
    from gpuplan.cli.estimate import render_estimate

    for instance_type, err in rep.log_tails:
        _notes([f"--- last lines of {instance_type}'s log ({err.log_uri}) ---", *(f"  {ln}" for ln in err.log_tail)])
    _notes(f"wrote {path}" for path in (rep.save(save) if save is not None else []))
    _notes(f"{o.target.instance_type}: {o.error}" for o in (rep.failed if rep.measured else []))
    if (nothing := rep.nothing_measured()) is not None:
        raise nothing
    render_estimate(estimate(rep), fmt)
    if (partial := rep.some_failed()) is not None:
        raise partial


class _ProgressView:
    """One status line per instance on stderr: rewritten in place on a terminal, printed on change otherwise."""

    def __init__(self) -> None:
        self.stream = sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.lock = threading.Lock()
        self.rows: dict[str, InstanceStatus] = {}
        self.printed: dict[str, str] = {}
        self.width = 0

    def __enter__(self) -> _ProgressView:
        return self

    def __exit__(self, *exc: object) -> None:
        self._end_line()

    def status(self, s: InstanceStatus) -> None:
        with self.lock:
            self.rows[s.instance_type] = s

    def tick(self) -> None:
        with self.lock:
            if self.tty:
                line = " | ".join(self._row(s) for s in self.rows.values())
                self.stream.write("\r" + line.ljust(self.width))
                self.width = len(line)
            else:
                for key, s in self.rows.items():
                    if self.printed.get(key) != s.state:
                        self.stream.write(self._row(s) + "\n")
                        self.printed[key] = s.state
            self.stream.flush()

    def message(self, text: str) -> None:
        self._end_line()
        render.note(text)

    def _end_line(self) -> None:
        with self.lock:
            if self.tty and self.width:
                self.stream.write("\n")
                self.stream.flush()
                self.width = 0

    @staticmethod
    def _row(s: InstanceStatus) -> str:
        cost = "" if s.usd_so_far is None else f", {render.usd(s.usd_so_far)} so far"
        return f"{s.instance_type} {s.instance_id} {s.state} {render.duration(s.elapsed_seconds)}{cost}"
instances_app = typer.Typer(help="The EC2 instances gpuplan started: list them, terminate them.",
                            no_args_is_help=False, rich_markup_mode=None,
                            epilog=examples("gpuplan instances", "gpuplan instances --ended --format json",
                                            "gpuplan instances terminate --all"))
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
    """List the instances gpuplan started, with age and cost so far."""
    if ctx.invoked_subcommand is not None:
        return
    from gpuplan.cloud.aws import make_clients
    from gpuplan.cloud.instances import list_instances
    from pricing.catalog import load_catalog

    render.check_format(fmt)
    rows = [r.model_dump(mode="json") for r in list_instances(make_clients(region),
                                                             load_catalog(catalog, notes=render.note),
                                                             include_ended=ended)]
    if rows or fmt != "table":
        render.emit(rows, INSTANCE_COLUMNS, fmt, csv_keys=[k for k, _, _ in INSTANCE_COLUMNS] + ["launched_at", "region"])
    else:
        render.note("No gpuplan instances" + ("" if ended else " running") + ".")


@instances_app.command("terminate", epilog=examples("gpuplan instances terminate i-0123456789abcdef0",
                                                    "gpuplan instances terminate --all --region us-east-1"))
def instances_terminate(
    instance_id: Annotated[list[str] | None, typer.Argument(help="Instance ids, e.g. i-0abc...")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Terminate every gpuplan instance in the region.")] = False,
    region: AwsRegionOpt = None,
    catalog: CatalogOpt = None,
) -> None:
    """Terminate gpuplan instances."""
    from gpuplan.cloud.aws import make_clients
    from gpuplan.cloud.instances import terminate
    from pricing.catalog import load_catalog

    if bool(instance_id) == all_:
        raise GpuplanError("give instance ids or --all (not both)")
    ended = terminate(make_clients(region), load_catalog(catalog, notes=render.note), instance_id or [],
                      all_active=all_)
    render.note(f"terminating {', '.join(ended)}" if ended else "Nothing to terminate: no such instance is running.")
