"""Reading the CloudFormation templates' IAM policies, shared by the deploy tests."""

from __future__ import annotations


def iam_statements(role: dict) -> list[dict]:
    """A role's policy statements; a conditional one as it is when its condition holds."""
    statements = []
    for policy in role["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            statements.append(statement["Fn::If"][1] if "Fn::If" in statement else statement)
    return statements


def iam_actions(statement: dict) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)
