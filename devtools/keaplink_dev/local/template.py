"""template.yaml as data, read by cfn-lint's own CloudFormation decoder (short tags become their long form:
``!Ref X`` → ``{"Ref": "X"}``, ``!Sub s`` → ``{"Fn::Sub": "s"}``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"


@lru_cache(maxsize=1)
def load_template() -> dict[str, Any]:
    from cfnlint.decode import decode  # type: ignore[import-untyped]

    tpl, errors = decode(str(TEMPLATE))
    assert not errors and tpl is not None, errors
    return dict(tpl)


def functions() -> dict[str, dict[str, Any]]:
    """Each AWS::Serverless::Function's Properties, by logical id."""
    return {name: r["Properties"] for name, r in load_template()["Resources"].items()
            if r["Type"] == "AWS::Serverless::Function"}
