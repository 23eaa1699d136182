"""The one way gpuplan talks to AWS, for prices and for launches: a boto3 client with the same retries everywhere,
the default region, a retry on top for throttling, and every AWS fault turned into one line that says how to fix it.

boto3 is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pricing.errors import PricingError, did_you_mean, one_line
from pricing.models import DEFAULT_REGION

MAX_ATTEMPTS = 6  # botocore's own retries per call ("adaptive": backoff plus a client-side rate limiter)

THROTTLE_CODES = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "RequestThrottled", "RequestThrottledException", "SlowDown", "PriorRequestNotComplete",
}
DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException",
                "UnauthorizedAccess", "Forbidden", "403"}
BAD_CREDENTIAL_CODES = {
    "AuthFailure", "UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId", "ExpiredToken",
    "ExpiredTokenException", "RequestExpired", "SignatureDoesNotMatch", "InvalidSignatureException",
}


def default_region() -> str:
    """The AWS profile's region (AWS_REGION, AWS_DEFAULT_REGION, ~/.aws/config), else us-east-1."""
    import boto3

    return boto3.session.Session().region_name or DEFAULT_REGION


def known_regions() -> list[str]:
    """Regions botocore's bundled endpoint data knows (offline)."""
    import boto3

    return boto3.session.Session().get_available_regions("ec2")


def make_client(service: str, region: str, session: Any = None) -> Any:
    """A boto3 client that rides out throttling; AWS_MAX_ATTEMPTS overrides the retries (tests set 1 to fail fast).

    `session`: a boto3 Session to make it from (sessions are not thread-safe; clients are).
    """
    import boto3
    from botocore.config import Config

    attempts = int(os.environ.get("AWS_MAX_ATTEMPTS", MAX_ATTEMPTS))
    config = Config(retries={"mode": "adaptive", "max_attempts": attempts}, connect_timeout=10, read_timeout=60)
    return (session or boto3.session.Session()).client(service, region_name=region, config=config)


def error_code(err: BaseException) -> str:
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def error_message(err: BaseException) -> str:
    response = getattr(err, "response", None) or {}
    return one_line(Exception(response.get("Error", {}).get("Message", "") or ""))


def translate(err: BaseException, action: str, *, region: str | None = None, needs: str = "", after: str = "",
              error: type[PricingError] = PricingError) -> PricingError | None:
    """The one-line error (of type `error`) for an AWS fault, or None for one that is a bug, not the user's.

    `needs`: the fix for a denied permission (which permissions); `after`: what the failure leaves as it was.
    """
    if isinstance(err, PricingError):
        return err
    from botocore import exceptions as bx

    where = f" in {region}" if region else ""
    if isinstance(err, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return error("no AWS credentials found; run `aws configure` (or `aws sso login`), or set AWS_PROFILE, or "
                     f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY{after}")
    if isinstance(err, (bx.ProfileNotFound, bx.NoRegionError)):
        return error(f"AWS configuration: {one_line(err)}; fix AWS_PROFILE or ~/.aws/config (`aws configure "
                     f"--profile NAME`), or pass --region{after}")
    if isinstance(err, (bx.TokenRetrievalError, bx.SSOError, bx.UnauthorizedSSOTokenError)):
        return error(f"your AWS SSO session has expired ({one_line(err)}): run `aws sso login`{after}")
    if isinstance(err, (bx.ConnectionError, bx.HTTPClientError)):
        url = getattr(err, "kwargs", {}).get("endpoint_url", "")
        hint = ""
        if region and region not in known_regions():
            hint = f". Is {region!r} a region?{did_you_mean(region, known_regions())}"
        return error(f"cannot reach AWS{f' at {url}' if url else ''} to {action}{where} ({type(err).__name__}): "
                     f"check your network or proxy, the region (--region) and AWS_ENDPOINT_URL if you set it"
                     f"{after}{hint}")
    if not isinstance(err, bx.ClientError):
        return error(f"AWS error while trying to {action}: {one_line(err)[:200]}{after}") \
            if isinstance(err, bx.BotoCoreError) else None
    code, msg = error_code(err), error_message(err)
    if code in THROTTLE_CODES:
        return error(f"AWS is throttling the requests to {action} ({code}) even after retries with backoff: wait "
                     f"a minute and run it again{after}")
    if code in DENIED_CODES:
        return error(f"AWS denied permission to {action}{where} (access denied: {code}); {needs}{after}")
    if code in BAD_CREDENTIAL_CODES:
        return error(f"AWS rejected your credentials ({code}{f': {msg[:120]}' if msg else ''}): renew them "
                     f"(`aws sso login` or `aws configure`) and check the clock of this machine{after}")
    if code == "OptInRequired":
        return error(f"this service or region{where} is not enabled for your account: enable it in the AWS console "
                     f"or pick another region ({msg}){after}")
    return error(f"AWS error while trying to {action}: {code}: {msg[:200]}".rstrip(": ") + after)


@dataclass(frozen=True)
class Backoff:
    """Our retries of a throttled call on top of botocore's, with longer waits; tests pass a `sleep` that records."""

    retries: int = 3
    sleep: Callable[[float], Any] = time.sleep

    def wait(self, attempt: int) -> None:
        self.sleep(min(30.0, 2.0 * 2**attempt) * (0.5 + random.random() / 2))


def call(fn: Callable[..., Any], what: str, region: str, *, backoff: Backoff = Backoff(), needs: str = "",
         after: str = "", **kwargs: Any) -> Any:
    """fn(**kwargs), retrying a throttle after botocore's own retries, with the failure explained in one line."""
    attempt = 0
    while True:
        try:
            return fn(**kwargs)
        except Exception as e:
            if error_code(e) in THROTTLE_CODES and attempt < backoff.retries:
                backoff.wait(attempt)
                attempt += 1
                continue
            mapped = translate(e, what, region=region, needs=needs, after=after)
            if mapped is None:
                raise
            raise mapped from None
