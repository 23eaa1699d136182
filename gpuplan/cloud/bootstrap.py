"""The user data of a calibration instance: `bootstrap.sh` with this launch's parameters written in."""

from __future__ import annotations

import shlex
from importlib import resources

from pydantic import BaseModel, Field

from gpuplan import __version__
from gpuplan.errors import GpuplanError
from gpuplan.workload import Workload

TF_SPEC = "tensorflow[and-cuda]==2.21.*"
USER_DATA_LIMIT = 16 * 1024  # EC2's limit on user data, before base64


class BootstrapParams(BaseModel):
    launch_id: str
    region: str
    result_uri: str
    log_uri: str
    max_minutes: int = Field(gt=0)
    install_spec: str = f"gpuplan=={__version__}"
    tf_spec: str = TF_SPEC
    wheel_uri: str = ""
    model_uri: str = Field("", description="s3:// URI of a config.json shipped by the client (a local --model)")
    dataset_uri: str = Field("", description="s3:// URI of a dataset file shipped by the client (a local --dataset)")
    calibrate_args: list[str] = []


def calibrate_args(workload: Workload, *, steps: int | None = None, ship_model: bool = False,
                   extra: list[str] | None = None) -> list[str]:
    """The `gpuplan calibrate` flags that reproduce the client's workload on the instance."""
    args: list[str] = [] if ship_model else ["--model", workload.model]
    args += ["--num-examples", str(workload.num_examples), "--epochs", f"{workload.epochs:g}",
             "--batch-size", str(workload.batch_size), "--seq-len", str(workload.seq_len),
             "--precision", "both" if len(workload.precisions) > 1 else workload.precisions[0]]
    if steps is not None:
        args += ["--steps", str(steps)]
    return args + ["--quiet"] + list(extra or [])


def _template(name: str) -> str:
    return resources.files("gpuplan.cloud").joinpath(name).read_text()


def render_user_data(params: BootstrapParams) -> str:
    values = {
        "LAUNCH_ID": params.launch_id, "RESULT_URI": params.result_uri, "LOG_URI": params.log_uri,
        "MAX_MINUTES": str(params.max_minutes), "INSTALL_SPEC": params.install_spec, "TF_SPEC": params.tf_spec,
        "WHEEL_URI": params.wheel_uri, "MODEL_URI": params.model_uri, "DATASET_URI": params.dataset_uri,
    }
    lines = [f"{k}={shlex.quote(v)}" for k, v in values.items()]
    lines.append(f"CALIBRATE_ARGS=({' '.join(shlex.quote(a) for a in params.calibrate_args)})")
    # The instance's boto3 and AWS CLI need the bucket's region; credentials come from the instance profile.
    lines.append(f"export AWS_DEFAULT_REGION={shlex.quote(params.region)}")
    s3cp = _template("s3cp.py").rstrip("\n")
    if "GPUPLAN_S3CP_EOF" in s3cp:
        raise AssertionError("s3cp.py must not contain the heredoc terminator")
    script = _template("bootstrap.sh").replace("# @@PARAMETERS@@", "\n".join(lines)).replace("# @@S3CP_PY@@", s3cp)
    size = len(script.encode())
    if size > USER_DATA_LIMIT:
        raise GpuplanError(f"the bootstrap script is {size} bytes, over EC2's {USER_DATA_LIMIT}-byte user data limit; "
                           "use shorter workload flags")
    return script
