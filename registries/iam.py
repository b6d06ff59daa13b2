"""The least-privilege IAM policy for pulling from an ECR registry (pure)."""

from __future__ import annotations

import json

PULL_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchGetImage",
    "ecr:DescribeImages",
    "ecr:ListImages",
    "ecr:DescribeRepositories",
    "ecr:GetRepositoryPolicy",
]


def pull_policy(*, account: str, region: str, repositories: list[str] | tuple[str, ...]) -> dict:
    """Read-only pull on ``repositories`` (all of the account's when none), plus the token call.

    ``ecr:GetAuthorizationToken`` cannot be limited to a resource, so it is granted on ``*``.
    """
    if repositories:
        resources = [f"arn:aws:ecr:{region}:{account}:repository/{repo}" for repo in sorted(set(repositories))]
    else:
        resources = [f"arn:aws:ecr:{region}:{account}:repository/*"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PullTheAppImages",
                "Effect": "Allow",
                "Action": PULL_ACTIONS,
                "Resource": resources if len(resources) > 1 else resources[0],
            },
            {
                "Sid": "GetRegistryToken",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
        ],
    }


def pull_policy_json(**kwargs) -> str:
    return json.dumps(pull_policy(**kwargs), indent=2)
