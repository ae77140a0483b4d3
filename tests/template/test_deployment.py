"""How the relay is deployed: the two environments of samconfig.toml."""

import re
import shlex
import tomllib

import pytest

from tests.support import ROOT, template

PARAMETERS = template()["Parameters"]


def samconfig() -> dict:
    return tomllib.loads((ROOT / "samconfig.toml").read_text())


def overrides(environment: str) -> dict[str, str]:
    text = samconfig()[environment]["deploy"]["parameters"]["parameter_overrides"]
    return dict(item.split("=", 1) for item in shlex.split(text))


# ---- samconfig.toml ----


def test_samconfig_has_a_dev_default_and_a_prod_environment_with_their_own_stacks():
    config = samconfig()
    assert set(config) - {"version"} == {"default", "prod"}
    dev = config["default"]["global"]["parameters"]["stack_name"]
    prod = config["prod"]["global"]["parameters"]["stack_name"]
    assert (dev, prod) == ("dify-relay-dev", "dify-relay-prod")
    # The deploy role's policy in the README is scoped to resources named dify-relay-*.
    assert dev != prod and all(name.startswith("dify-relay-") for name in (dev, prod))


def test_prod_confirms_change_sets_and_dev_does_not_ask():
    assert samconfig()["prod"]["deploy"]["parameters"]["confirm_changeset"] is True
    assert samconfig()["default"]["deploy"]["parameters"]["confirm_changeset"] is False


@pytest.mark.parametrize("environment", ["default", "prod"])
def test_each_environment_deploys_the_same_way_with_valid_parameters(environment):
    deploy = samconfig()[environment]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM" and deploy["resolve_s3"] is True
    values = overrides(environment)
    assert set(values) <= set(PARAMETERS), set(values) - set(PARAMETERS)
    assert {"AllowedOrigins", "DeploymentType", "LogRetentionDays"} <= set(values)
    for name, value in values.items():
        allowed = PARAMETERS[name].get("AllowedValues")
        if allowed:
            assert value in [str(v) for v in allowed], (name, value)
        if "AllowedPattern" in PARAMETERS[name]:
            assert re.fullmatch(PARAMETERS[name]["AllowedPattern"], value), (name, value)


def test_prod_shifts_traffic_by_canary_and_dev_at_once():
    assert overrides("prod")["DeploymentType"] == "Canary10Percent5Minutes"
    assert overrides("default")["DeploymentType"] == "AllAtOnce"
    assert overrides("default") != overrides("prod")
