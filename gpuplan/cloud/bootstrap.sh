#!/bin/bash
# gpuplan calibration bootstrap: EC2 user data, run once as root by cloud-init at first boot.
# `gpuplan launch` writes the parameters below; the rest is the same for every launch.
# No credentials here: S3 access comes from the instance profile, limited to gpuplan/ in one bucket.
set -euo pipefail

# @@PARAMETERS@@

# Stand-ins, so that a test can run this very script in a sandbox: GPUPLAN_WORKDIR (instead of /opt/gpuplan),
# GPUPLAN_PYTHON (an interpreter to use as it is, instead of a new venv), GPUPLAN_PIP (instead of `python -m pip`);
# `shutdown` and `aws` are found on PATH.
WORKDIR="${GPUPLAN_WORKDIR:-/opt/gpuplan}"
LOG="$WORKDIR/bootstrap.log"
PYTHON="${GPUPLAN_PYTHON:-}"
export HOME="${HOME:-/root}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
mkdir -p "$WORKDIR"
# Everything from here on, ours and the tools', goes to the log that is uploaded beside the result.
exec >>"$LOG" 2>&1

CURRENT_STEP="start"
log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) gpuplan[$LAUNCH_ID]: $*"; }
step() { CURRENT_STEP="$*"; log "step: $*"; }

# SRC DST, one of them s3://...: boto3 when the interpreter has it, else the AWS CLI that DLAMIs carry.
s3cp() {
  local py="${PYTHON:-python3}"
  if "$py" -c 'import boto3' 2>/dev/null; then
    "$py" "$WORKDIR/s3cp.py" "$1" "$2"
  elif command -v aws >/dev/null 2>&1; then
    aws s3 cp --only-show-errors "$1" "$2"
  else
    log "cannot reach S3: neither boto3 nor the AWS CLI is installed"
    return 1
  fi
}

finish() {
  local rc=$?
  trap - EXIT
  set +e
  if [ "$rc" -eq 0 ]; then log "finished"; else log "FAILED (exit $rc) during: $CURRENT_STEP"; fi
  # The log goes up on failure too: it is what `gpuplan launch` shows when no result arrives.
  s3cp "$LOG" "$LOG_URI" || log "could not upload the log"
  log "shutting down (the instance terminates itself)"
  shutdown -h now
  exit "$rc"
}
trap finish EXIT

# Armed before anything can hang: the instance powers off (and so terminates) even if this script or the client
# dies. InstanceInitiatedShutdownBehavior=terminate turns the power-off into a termination.
step "watchdog: power off in $MAX_MINUTES minutes whatever happens"
shutdown -h "+$MAX_MINUTES"

step "write the S3 helper"
cat >"$WORKDIR/s3cp.py" <<'GPUPLAN_S3CP_EOF'
# @@S3CP_PY@@
GPUPLAN_S3CP_EOF

# gpuplan needs Python >= 3.11; Ubuntu 22.04 and Amazon Linux 2023 ship older ones, so install one when needed.
newest_python() {
  local p
  for p in python3.13 python3.12 python3.11 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

os_install() {
  if command -v apt-get >/dev/null 2>&1; then
    # At first boot unattended-upgrades often holds the dpkg lock for minutes: wait for it instead of failing.
    apt-get -o DPkg::Lock::Timeout=600 update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "$@"
  else
    dnf install -y -q "$@"
  fi
}

if [ -z "$PYTHON" ]; then
  step "python: a virtual environment in $WORKDIR/venv"
  BASE="$(newest_python)" || { os_install python3.11 python3.11-venv || os_install python3.11; BASE=python3.11; }
  if ! "$BASE" -m venv "$WORKDIR/venv"; then
    os_install "$BASE-venv" || os_install python3-venv
    "$BASE" -m venv "$WORKDIR/venv"
  fi
  PYTHON="$WORKDIR/venv/bin/python"
fi
log "python: $PYTHON ($("$PYTHON" --version 2>&1))"

pip_install() {
  if [ -n "${GPUPLAN_PIP:-}" ]; then
    "$GPUPLAN_PIP" install "$@"
  else
    "$PYTHON" -m pip install --no-input --progress-bar off "$@"
  fi
}

if [ -n "$WHEEL_URI" ]; then
  step "fetch the gpuplan wheel shipped by the client"
  INSTALL_SPEC="$WORKDIR/${WHEEL_URI##*/}"
  s3cp "$WHEEL_URI" "$INSTALL_SPEC"
fi

if [ -n "$MODEL_URI" ]; then
  step "fetch the model config shipped by the client"
  mkdir -p "$WORKDIR/model"
  s3cp "$MODEL_URI" "$WORKDIR/model/config.json"
  CALIBRATE_ARGS+=(--model "$WORKDIR/model")
fi

if [ -n "$DATASET_URI" ]; then
  step "fetch the dataset shipped by the client"
  mkdir -p "$WORKDIR/data"
  s3cp "$DATASET_URI" "$WORKDIR/data/${DATASET_URI##*/}"
  CALIBRATE_ARGS+=(--dataset "$WORKDIR/data/${DATASET_URI##*/}")
fi

step "install $INSTALL_SPEC and $TF_SPEC"
pip_install --upgrade pip
pip_install "$INSTALL_SPEC" "$TF_SPEC"

step "GPU"
if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi || true; else log "no nvidia-smi on this machine"; fi

step "calibrate: gpuplan calibrate ${CALIBRATE_ARGS[*]}"
rm -f "$WORKDIR/result.json"
"$PYTHON" -m gpuplan calibrate --output "$WORKDIR/result.json" "${CALIBRATE_ARGS[@]}"

step "upload the result to $RESULT_URI"
s3cp "$WORKDIR/result.json" "$RESULT_URI"
