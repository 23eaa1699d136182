"""The instances gpuplan started (tagged `gpuplan:launch-id`): list them with their cost so far, terminate them."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from gpuplan.cloud.aws import Clients, aws_errors
from gpuplan.cloud.launchplan import find_offer, hourly_price
from gpuplan.cloud.resources import TAG_LAUNCH_ID, TAG_RESULT_URI
from gpuplan.errors import GpuplanError
from pricing.models import Catalog

ACTIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


class InstanceRow(BaseModel):
    instance_id: str
    instance_type: str
    state: str
    market: str
    launch_id: str
    launched_at: dt.datetime | None = None
    age_seconds: float | None = None
    usd_per_hour: float | None = None
    usd_so_far: float | None = None
    result_uri: str | None = None
    region: str


def list_instances(clients: Clients, catalog: Catalog, *, include_ended: bool = False,
                   now: dt.datetime | None = None) -> list[InstanceRow]:
    now = now or dt.datetime.now(dt.timezone.utc)
    filters = [{"Name": "tag-key", "Values": [TAG_LAUNCH_ID]}]
    if not include_ended:
        filters.append({"Name": "instance-state-name", "Values": ACTIVE_STATES})
    rows = []
    with aws_errors("list gpuplan instances (ec2:DescribeInstances)", region=clients.region):
        pages = clients.ec2.get_paginator("describe_instances").paginate(Filters=filters)
        instances = [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
    for inst in instances:
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        spot = inst.get("InstanceLifecycle") == "spot"
        price, _ = hourly_price(find_offer(catalog, inst["InstanceType"], clients.region), clients.region, spot)
        launched = inst.get("LaunchTime")
        state = inst["State"]["Name"]
        age = (now - launched).total_seconds() if launched else None
        # Billing stops at termination; EC2 does not say when that was, so ended instances get no running cost.
        billed = age is not None and state in ("pending", "running", "stopping", "shutting-down")
        rows.append(InstanceRow(
            instance_id=inst["InstanceId"], instance_type=inst["InstanceType"], state=state,
            market="spot" if spot else "on-demand", launch_id=tags.get(TAG_LAUNCH_ID, ""), launched_at=launched,
            age_seconds=age, usd_per_hour=price,
            usd_so_far=price * max(age or 0.0, 0.0) / 3600 if (price is not None and billed) else None,
            result_uri=tags.get(TAG_RESULT_URI), region=clients.region,
        ))
    return sorted(rows, key=lambda r: (r.launched_at or now, r.instance_id))


def terminate(clients: Clients, catalog: Catalog, instance_ids: list[str], *, all_active: bool = False) -> list[str]:
    """Terminate gpuplan's instances: the ids given (each must carry the gpuplan tag) or every active one."""
    active = {r.instance_id: r for r in list_instances(clients, catalog)}
    if all_active:
        ids = list(active)
    else:
        tagged = {r.instance_id for r in list_instances(clients, catalog, include_ended=True)}
        foreign = [i for i in instance_ids if i not in tagged]
        if foreign:
            # Refuse rather than terminate someone's database server by a typo.
            raise GpuplanError(f"{', '.join(foreign)} {'is' if len(foreign) == 1 else 'are'} not a gpuplan instance "
                               f"in {clients.region}; see `gpuplan instances` (and --region)")
        ids = [i for i in instance_ids if i in active]
    if ids:
        with aws_errors(f"terminate {', '.join(ids)} (ec2:TerminateInstances)", region=clients.region):
            clients.ec2.terminate_instances(InstanceIds=ids)
    return ids
