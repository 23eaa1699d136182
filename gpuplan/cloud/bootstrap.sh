#!/bin/bash
# gpuplan calibration bootstrap: EC2 user data, run once as root by cloud-init at first boot.
# `gpuplan launch` writes the parameters below; the rest is the same for every launch.
# No credentials here: the instance gets presigned URLs for this launch's files only (or, with --instance-profile,
# s3:// URIs that its role may read and write).
set -euo pipefail

# @@PARAMETERS@@

# Stand-ins, so that a test can run this very script in a sandbox: GPUPLAN_WORKDIR (instead of /opt/gpuplan),
# GPUPLAN_PYTHON (an interpreter to use as it is, instead of a new venv), GPUPLAN_PIP (instead of `python -m pip`),
# GPUPLAN_SYSTEMD_DIR (instead of /etc/systemd/system), GPUPLAN_TF_GPU_CHECK (a command instead of asking
# TensorFlow for its GPUs); `shutdown`, `systemctl`, `nvidia-smi`, `curl` and `aws` are found on PATH.
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
# Phase stamps (seconds since the epoch); the result carries the phases computed from them.
stamp() { echo "$1 $(date +%s.%N)" >>"$WORKDIR/stamps"; }
stamp start
echo "uptime $(cut -d' ' -f1 /proc/uptime 2>/dev/null || echo 0)" >>"$WORKDIR/stamps"

# s3:// URIs (a role's credentials): boto3 when the interpreter has it, else the AWS CLI that DLAMIs carry.
s3cp() {
  local py="${PYTHON:-python3}"
  if "$py" -c 'import boto3' 2>/dev/null; then
    "$py" "$WORKDIR/s3cp.py" "$1" "$2" "$BUCKET_OWNER"
  elif command -v aws >/dev/null 2>&1; then
    aws s3 cp --only-show-errors --expected-bucket-owner "$BUCKET_OWNER" "$1" "$2"
  else
    log "cannot reach S3: neither boto3 nor the AWS CLI is installed"
    return 1
  fi
}
# The bucket-owner header is part of each URL's signature: S3 refuses the request if the bucket changed hands.
CURL=(curl -fsS --retry 5 --retry-delay 3 -H "x-amz-expected-bucket-owner: $BUCKET_OWNER")
fetch() {  # URL FILE
  case "$1" in s3://*) s3cp "$1" "$2" ;; *) "${CURL[@]}" -o "$2" "$1" ;; esac
}
send() {  # FILE URL
  case "$2" in
    s3://*) s3cp "$1" "$2" ;;
    *) "${CURL[@]}" -H "Content-Type: application/octet-stream" -T "$1" "$2" ;;
  esac
}

finish() {
  local rc=$?
  trap - EXIT
  set +e
  if [ "$rc" -eq 0 ]; then log "finished"; else log "FAILED (exit $rc) during: $CURRENT_STEP"; fi
  # The log goes up on failure too: it is what `gpuplan launch` shows when no result arrives.
  send "$LOG" "$LOG_URL" || log "could not upload the log"
  log "shutting down (the instance terminates itself)"
  shutdown -h now
  exit "$rc"
}
trap finish EXIT

# A result that says why there is no measurement; the client reports it and terminates the instance.
error_result() {  # KIND MESSAGE
  local msg
  msg="$(printf '%s' "$2" | tr -d '"\\' | tr '\n\t\r' '   ' | cut -c1-300)"
  printf '{"gpuplan_error": "%s", "message": "%s", "launch_id": "%s"}\n' "$1" "$msg" "$LAUNCH_ID" \
    >"$WORKDIR/error.json"
  log "ERROR: $msg"
  send "$WORKDIR/error.json" "$RESULT_URL" || log "could not upload the error result"
  exit 3
}

# Armed before anything can hang: the instance powers off (and so terminates) even if this script or the client
# dies. InstanceInitiatedShutdownBehavior=terminate turns the power-off into a termination. `shutdown -h +N` is
# forgotten by a reboot; the systemd timer is not (Persistent: a deadline passed while down fires at boot).
step "watchdog: power off in $MAX_MINUTES minutes whatever happens"
shutdown -h "+$MAX_MINUTES"
if command -v systemctl >/dev/null 2>&1; then
  UNITS="${GPUPLAN_SYSTEMD_DIR:-/etc/systemd/system}"
  printf '[Unit]\nDescription=gpuplan watchdog: power off\n[Service]\nType=oneshot\nExecStart=/bin/sh -c %s\n' \
    "'shutdown -h now'" >"$UNITS/gpuplan-watchdog.service"
  printf '[Unit]\nDescription=gpuplan watchdog deadline\n[Timer]\nOnCalendar=%s\nPersistent=true\nAccuracySec=1s\n%s\n' \
    "$(date -d "+$MAX_MINUTES min" '+%Y-%m-%d %H:%M:%S')" "[Install]
WantedBy=timers.target" >"$UNITS/gpuplan-watchdog.timer"
  { systemctl daemon-reload && systemctl enable --now gpuplan-watchdog.timer; } ||
    log "the watchdog timer could not be armed; shutdown -h +$MAX_MINUTES still is"
fi

# The GPU first: an AMI whose driver does not drive this GPU would otherwise bill a CPU calibration.
step "GPU: nvidia-smi"
for try in 1 2 3 4 5 6; do
  command -v nvidia-smi >/dev/null 2>&1 ||
    error_result no_gpu "nvidia-smi is not installed: the AMI has no NVIDIA driver"
  nvidia-smi -L 2>&1 | grep -q '^GPU ' && break
  [ "$try" -eq 6 ] && error_result no_gpu "nvidia-smi lists no GPU: $(nvidia-smi -L 2>&1 | head -n 2)"
  sleep 5
done
nvidia-smi -L
stamp driver

step "write the S3 helper"
cat >"$WORKDIR/s3cp.py" <<'GPUPLAN_S3CP_EOF'
# @@S3CP_PY@@
GPUPLAN_S3CP_EOF

# gpuplan needs Python >= 3.11; Ubuntu 22.04 and Amazon Linux 2/2023 ship older ones, so get one when needed.
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
  elif command -v dnf >/dev/null 2>&1; then
    dnf install -y -q "$@"
  else
    yum install -y -q "$@"
  fi
}

if [ -z "$PYTHON" ]; then
  step "python: a virtual environment in $WORKDIR/venv"
  if BASE="$(newest_python)" || { os_install python3.11 python3.11-venv || os_install python3.11; } &&
    BASE="$(newest_python)"; then
    "$BASE" -m venv "$WORKDIR/venv" || { os_install "$BASE-venv" || os_install python3-venv; "$BASE" -m venv "$WORKDIR/venv"; }
  else  # Amazon Linux 2 packages no Python 3.11 (its DLAMI has a 3.10): uv brings a standalone build
    "$(command -v python3.10 || command -v python3)" -m pip install -q --user uv
    "$HOME/.local/bin/uv" venv -q --seed -p 3.11 "$WORKDIR/venv"
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

step "fetch the gpuplan wheel shipped by the client"
WHEEL="$WORKDIR/$WHEEL_NAME"
fetch "$WHEEL_URL" "$WHEEL"

if [ -n "$MODEL_URL" ]; then
  step "fetch the model config shipped by the client"
  mkdir -p "$WORKDIR/model"
  fetch "$MODEL_URL" "$WORKDIR/model/config.json"
  CALIBRATE_ARGS+=(--model "$WORKDIR/model")
fi

if [ -n "$DATASET_URL" ]; then
  step "fetch the dataset shipped by the client"
  mkdir -p "$WORKDIR/data"
  fetch "$DATASET_URL" "$WORKDIR/data/$DATASET_NAME"
  CALIBRATE_ARGS+=(--dataset "$WORKDIR/data/$DATASET_NAME")
fi

# The client's own wheel, never gpuplan from an index; its dependencies and TensorFlow do come from PyPI.
step "install $WHEEL_NAME and $TF_SPEC"
pip_install --upgrade pip
pip_install "$WHEEL" "$TF_SPEC"

step "GPU: TensorFlow"
if [ -n "${GPUPLAN_TF_GPU_CHECK:-}" ]; then
  TF_GPUS="$($GPUPLAN_TF_GPU_CHECK)" || TF_GPUS=0
else
  TF_GPUS="$("$PYTHON" -c 'import tensorflow as tf; print(len(tf.config.list_physical_devices("GPU")))' | tail -n 1)" ||
    TF_GPUS=0
fi
[ "${TF_GPUS:-0}" -gt 0 ] 2>/dev/null ||
  error_result no_gpu "TensorFlow $TF_SPEC sees no GPU although nvidia-smi does (driver too old for its CUDA?)"
log "TensorFlow sees $TF_GPUS GPU(s)"
stamp install

step "calibrate: gpuplan calibrate ${CALIBRATE_ARGS[*]}"
rm -f "$WORKDIR/result.json"
"$PYTHON" -m gpuplan calibrate --output "$WORKDIR/result.json" "${CALIBRATE_ARGS[@]}"
stamp calibrated

step "phases: add the start-up phases to the result"
"$PYTHON" -m gpuplan.cloud.phases "$WORKDIR/stamps" "$WORKDIR/result.json" "$LAUNCHED_AT" ||
  log "could not add the phases; the result goes up without them"

step "upload the result"
send "$WORKDIR/result.json" "$RESULT_URL"
