"""How fast a launch polls and retries, and where it looks for its AMI: production values by default.

One value passed down (`gpuplan launch` takes it from the Typer context object), so tests run against moto with
fast polling and moto's AMI names without patching module globals.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpuplan.cloud.resources import AMI_NAME_PATTERNS, AMI_PARAMETERS, PROPRIETARY_AMI_NAME_PATTERNS

POLL_SECONDS = 15.0  # S3 and EC2 are asked this often while waiting for a result
PROFILE_RETRY_SECONDS = 5.0  # a new instance profile takes a few seconds to be usable by EC2
PROFILE_RETRIES = 12
URL_MARGIN_MINUTES = 15.0  # presigned URLs outlive the watchdog by this: the boot before it is armed, clocks
TERMINATE_RETRY_SECONDS = 0.5  # after a failed terminate call (and after Ctrl-C, for a launch call in flight)


@dataclass(frozen=True)
class LaunchSettings:
    poll_seconds: float = POLL_SECONDS
    profile_retry_seconds: float = PROFILE_RETRY_SECONDS
    profile_retries: int = PROFILE_RETRIES
    terminate_retry_seconds: float = TERMINATE_RETRY_SECONDS
    ami_parameters: tuple[str, ...] = tuple(AMI_PARAMETERS)
    ami_name_patterns: tuple[str, ...] = tuple(AMI_NAME_PATTERNS)
    # For GPUs the open NVIDIA modules don't drive (Volta, Maxwell): images with the proprietary driver.
    proprietary_ami_name_patterns: tuple[str, ...] = tuple(PROPRIETARY_AMI_NAME_PATTERNS)
    url_margin_minutes: float = URL_MARGIN_MINUTES
