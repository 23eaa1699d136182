"""The user data of a calibration instance: `bootstrap.sh` with this launch's parameters written in."""

from __future__ import annotations

import shlex
from importlib import resources

from pydantic import BaseModel, Field

from gpuplan.errors import GpuplanError
from gpuplan.workload import Workload

TF_SPEC = "tensorflow[and-cuda]==2.21.*"
USER_DATA_LIMIT = 16 * 1024  # EC2's limit on user data, before base64


class BootstrapParams(BaseModel):
    launch_id: str
    region: str
    bucket_owner: str = Field(description="the account that must own the bucket (x-amz-expected-bucket-owner)")
    launched_at: float = Field(0.0, description="the client's clock when it asked EC2 for the instance (epoch s)")
    result_url: str = Field(description="presigned PUT URL, or s3:// URI with --instance-profile")
    log_url: str
    max_minutes: int = Field(gt=0)
    tf_spec: str = TF_SPEC
    wheel_url: str
    wheel_name: str
    model_url: str = Field("", description="where the client shipped a local --model's config.json")
    dataset_url: str = Field("", description="where the client shipped a local --dataset file")
    dataset_name: str = ""
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
        "LAUNCH_ID": params.launch_id, "BUCKET_OWNER": params.bucket_owner, "LAUNCHED_AT": f"{params.launched_at:.3f}",
        "RESULT_URL": params.result_url, "LOG_URL": params.log_url, "MAX_MINUTES": str(params.max_minutes),
        "TF_SPEC": params.tf_spec, "WHEEL_URL": params.wheel_url, "WHEEL_NAME": params.wheel_name,
        "MODEL_URL": params.model_url, "DATASET_URL": params.dataset_url, "DATASET_NAME": params.dataset_name,
    }
    lines = [f"{k}={shlex.quote(v)}" for k, v in values.items()]
    lines.append(f"CALIBRATE_ARGS=({' '.join(shlex.quote(a) for a in params.calibrate_args)})")
    # With --instance-profile the instance's boto3 and AWS CLI need the bucket's region.
    lines.append(f"export AWS_DEFAULT_REGION={shlex.quote(params.region)}")
    s3cp = _template("s3cp.py").rstrip("\n")
    if "GPUPLAN_S3CP_EOF" in s3cp:
        raise AssertionError("s3cp.py must not contain the heredoc terminator")
    return _template("bootstrap.sh").replace("# @@PARAMETERS@@", "\n".join(lines)).replace("# @@S3CP_PY@@", s3cp)


def encode_user_data(script: str) -> bytes:
    """The bytes EC2 gets: the script as it is when it fits the 16 KB limit, else gzipped (cloud-init unpacks gzip
    user data; long presigned URLs, which carry a session token each, compress well). Too big even so: an error."""
    import gzip

    raw = script.encode()
    if len(raw) <= USER_DATA_LIMIT:
        return raw
    packed = gzip.compress(raw, mtime=0)
    if len(packed) > USER_DATA_LIMIT:
        raise GpuplanError(f"the bootstrap script is {len(raw)} bytes ({len(packed)} gzipped), over EC2's "
                           f"{USER_DATA_LIMIT}-byte user data limit; use shorter workload flags")
    return packed
