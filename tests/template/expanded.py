"""template.yaml as SAM's transform hands it to CloudFormation, as `make audit` builds it."""

from __future__ import annotations

import copy
import os
from functools import cache
from unittest import mock

from tests.support import ROOT


@cache
def _source() -> dict:
    from samtranslator.yaml_helper import yaml_parse

    sam = yaml_parse((ROOT / "template.yaml").read_text())
    for item in sam["Resources"].values():
        properties = item.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = f"s3://placeholder/{key}"
    return sam


@cache
def expanded(parameters: tuple[tuple[str, str], ...] = ()) -> dict:
    """The transformed template; `parameters` are the stack's parameter values, as CloudFormation
    passes them to the transform (SAM resolves some properties, e.g. DeploymentPreference.Type, with them).
    """
    from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
    from samtranslator.translator.transform import transform

    class ManagedPolicies:
        def load(self):
            return get_bundled_managed_policy_map("aws")

    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1"}):
        return transform(copy.deepcopy(_source()), dict(parameters), ManagedPolicies())


def of_type(kind: str, resources: dict) -> dict:
    return {name: item for name, item in resources.items() if item["Type"] == kind}
