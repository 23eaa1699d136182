"""Copy one file to or from S3: `python s3cp.py SRC DST [OWNER]`, where one of SRC and DST is s3://BUCKET/KEY and
OWNER the account that must own the bucket (ExpectedBucketOwner). Used with --instance-profile only.

Stand-alone on purpose (stdlib and boto3 only): the bootstrap script embeds this file and runs it before gpuplan
is installed (to fetch a shipped wheel) and after a failed install (to upload the log). The instance's credentials
come from its instance profile through boto3's usual chain; none are ever passed in.
"""

from __future__ import annotations

import sys


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3://BUCKET/KEY URI: {uri}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def copy(src: str, dst: str, owner: str = "") -> None:
    import boto3

    s3 = boto3.client("s3")
    extra = {"ExpectedBucketOwner": owner} if owner else None
    if dst.startswith("s3://"):
        bucket, key = split_uri(dst)
        s3.upload_file(src, bucket, key, ExtraArgs=extra)
    elif src.startswith("s3://"):
        bucket, key = split_uri(src)
        s3.download_file(bucket, key, dst, ExtraArgs=extra)
    else:
        raise ValueError("one of SRC and DST must be an s3:// URI")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python s3cp.py SRC DST [OWNER] (one of SRC, DST s3://BUCKET/KEY)", file=sys.stderr)
        return 2
    try:
        copy(*argv)
    except Exception as e:  # a one-line reason in the bootstrap log beats a traceback there
        print(f"s3cp: {argv[0]} -> {argv[1]} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
