"""`gpuplan launch` from a non-editable install (no source tree): the instance gets a wheel packed from the installed
files, never gpuplan from an index. The client runs in a subprocess that imports the installed copy; the moto server
and the stand-in instance are this test's."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from cloud_helpers import ENDPOINT, FakeInstances, gpuplan_bucket, gpuplan_instances, live_instances, make_result, s3
from cloud_helpers import tags, upload_result

REPO = Path(__file__).parents[1]


def test_an_installed_gpuplan_ships_a_wheel_of_its_own_files(aws, tmp_path):
    ENDPOINT[:] = [aws]
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(REPO)], check=True, capture_output=True)
    temp = tmp_path / "tmp"
    temp.mkdir()
    client = f"""
import sys
sys.path[:0] = [{str(site)!r}, {str(Path(__file__).parent)!r}]
import gpuplan
assert gpuplan.__file__.startswith({str(site)!r}), gpuplan.__file__
from typer.testing import CliRunner
from gpuplan.cli import app
from cloud_helpers import FAST
r = CliRunner().invoke(app, ["launch", "--instance", "g4dn.xlarge", "--yes", "--steps", "20", "--format", "json"],
                       obj=FAST)
sys.stderr.write(r.stderr)
sys.exit(r.exit_code)
"""
    fake = FakeInstances(upload_result(make_result(gpu_key="t4")))
    fake.start()
    done = subprocess.run([sys.executable, "-c", client], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "TMPDIR": str(temp)}, timeout=300)
    fake.join()
    assert fake.error is None
    assert done.returncode == 0, done.stderr[-3000:]
    assert "installs this gpuplan (packed from the installed gpuplan's files" in done.stderr
    assert list(temp.glob("gpuplan-wheel-*")) == []  # the packing folder went with the process

    (inst,) = gpuplan_instances()
    lid = tags(inst)["gpuplan:launch-id"]
    body = s3().get_object(Bucket=gpuplan_bucket(), Key=f"gpuplan/{lid}/gpuplan-0.1.0-py3-none-any.whl")["Body"].read()
    wheel = zipfile.ZipFile(io.BytesIO(body))
    names = set(wheel.namelist())
    installed = {p.relative_to(site).as_posix() for top in ("gpuplan", "pricing") for p in (site / top).rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts}
    assert installed <= names and "gpuplan/cloud/bootstrap.sh" in names
    assert all(wheel.read(n) == (site / n).read_bytes() for n in installed)  # byte for byte the client's code
    assert {"gpuplan-0.1.0.dist-info/METADATA", "gpuplan-0.1.0.dist-info/WHEEL",
            "gpuplan-0.1.0.dist-info/RECORD"} <= names
    # And pip installs it (what the instance does).
    shipped = tmp_path / "gpuplan-0.1.0-py3-none-any.whl"
    shipped.write_bytes(body)
    again = tmp_path / "again"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(again), str(shipped)],
                   check=True)
    assert (again / "gpuplan" / "cloud" / "bootstrap.sh").read_bytes() == (site / "gpuplan/cloud/bootstrap.sh").read_bytes()
    assert live_instances() == []
    ENDPOINT.clear()
