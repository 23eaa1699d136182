"""The IAM policy `gpuplan launch` needs: EC2 and S3 only, no IAM (the instance gets presigned URLs, not a role).

The README prints `launch_policy()`; a test checks that every AWS call a default launch makes is allowed by it.
"""

from __future__ import annotations

import json
from typing import Any

from gpuplan.cloud.resources import RESULTS_PREFIX, TAG_LAUNCH_ID


def launch_policy(bucket: str = "gpuplan-*") -> dict[str, Any]:
    """Least privilege for the default path; `bucket` is the --bucket, or gpuplan's own buckets by default."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "GpuplanLookups", "Effect": "Allow", "Resource": "*", "Action": [
            "ec2:DescribeImages", "ec2:DescribeInstances", "ec2:DescribeInstanceTypes", "ec2:DescribeSecurityGroups",
            "ec2:DescribeVpcs", "s3:ListAllMyBuckets"]},
        {"Sid": "GpuplanAmiParameters", "Effect": "Allow", "Action": "ssm:GetParameter",
         "Resource": "arn:aws:ssm:*::parameter/aws/service/deeplearning/*"},
        {"Sid": "GpuplanLaunch", "Effect": "Allow", "Resource": "*",
         "Action": ["ec2:RunInstances", "ec2:CreateSecurityGroup"]},
        {"Sid": "GpuplanTagOnCreate", "Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
         "Condition": {"StringEquals": {"ec2:CreateAction": ["RunInstances", "CreateSecurityGroup"]}}},
        {"Sid": "GpuplanTerminateOwn", "Effect": "Allow", "Action": "ec2:TerminateInstances", "Resource": "*",
         "Condition": {"Null": {f"ec2:ResourceTag/{TAG_LAUNCH_ID}": "false"}}},
        {"Sid": "GpuplanBucket", "Effect": "Allow", "Resource": f"arn:aws:s3:::{bucket}", "Action": [
            "s3:CreateBucket", "s3:ListBucket", "s3:PutBucketPublicAccessBlock", "s3:PutEncryptionConfiguration",
            "s3:PutLifecycleConfiguration"]},
        {"Sid": "GpuplanObjects", "Effect": "Allow", "Resource": f"arn:aws:s3:::{bucket}/{RESULTS_PREFIX}*",
         "Action": ["s3:GetObject", "s3:PutObject"]},
    ]}


def profile_statement(role_arn: str = "arn:aws:iam::ACCOUNT:role/ROLE") -> list[dict[str, Any]]:
    """What --instance-profile adds: checking the profile exists and handing its role to EC2."""
    return [
        {"Sid": "GpuplanInstanceProfile", "Effect": "Allow", "Action": "iam:GetInstanceProfile", "Resource": "*"},
        {"Sid": "GpuplanPassRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": role_arn,
         "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
    ]


def policy_json(bucket: str = "gpuplan-*", instance_profile: bool = False) -> str:
    """The policy as JSON, one statement a line."""
    policy = launch_policy(bucket)
    if instance_profile:
        policy["Statement"] += profile_statement()
    statements = ",\n".join(f"  {json.dumps(st)}" for st in policy["Statement"])
    return '{"Version": "2012-10-17", "Statement": [\n' + statements + "\n]}"
