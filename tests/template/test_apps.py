"""template.yaml deploys the app registry the relay reads: its path, its secrets, its routes, its metrics."""

import json
import re

import pytest

from relay.apps import parse_app
from relay.settings import Settings
from tests.support import function, resource, template
from tests.template.expanded import expanded

STACK = {"AWS::StackName": "shop", "AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "1"}
VARIABLES = function("RelayFunction")["Environment"]["Variables"]


def substituted(value) -> str:
    """A `!Sub` of pseudo parameters only, as CloudFormation resolves it for a stack named "shop"."""
    return re.sub(r"\$\{([^}]+)\}", lambda match: STACK[match[1]], value["Fn::Sub"])


def registry_statements() -> dict:
    [policy] = resource("RelayFunctionRole")["Properties"]["Policies"]
    return {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}


def test_the_relay_accepts_the_registry_settings_the_template_sets():
    env = {name: substituted(VARIABLES[name]) for name in ("APP_REGISTRY_PATH", "APP_SECRET_PREFIX")}
    parameter = template()["Parameters"]["RegistryCacheSeconds"]
    assert VARIABLES["REGISTRY_CACHE_SECONDS"] == {"Ref": "RegistryCacheSeconds"}
    for seconds in (parameter["MinValue"], parameter["Default"], parameter["MaxValue"]):
        settings = Settings.from_env(
            env
            | {
                "DIFY_API_KEY_SECRET": "arn:aws:secretsmanager:r:1:secret:k",
                "REGISTRY_CACHE_SECONDS": str(seconds),
            }
        )
        assert settings.registry_cache_seconds == seconds
    assert (settings.app_registry_path, settings.app_secret_prefix) == (
        "/dify-relay/shop/apps",
        "dify-relay/shop/apps/",
    )
    # Both functions read the registry: the setting is shared, not the JSON function's alone.
    assert (
        function("StreamFunction")["Environment"]["Variables"]["APP_REGISTRY_PATH"]
        == VARIABLES["APP_REGISTRY_PATH"]
    )


def test_the_role_reads_the_registry_path_and_only_the_apps_secrets():
    statements = registry_statements()
    path = substituted(VARIABLES["APP_REGISTRY_PATH"])
    registry = statements["ReadAppRegistry"]
    assert registry["Action"] == ["ssm:GetParametersByPath"]  # no GetParameter*: nothing else is read
    # Parameter Store authorises GetParametersByPath against the path asked for, written without its "/".
    assert substituted(registry["Resource"]) == f"arn:aws:ssm:eu-west-1:1:parameter{path}"
    keys = statements["ReadAppKeys"]
    prefix = substituted(VARIABLES["APP_SECRET_PREFIX"])
    assert keys["Action"] == ["secretsmanager:GetSecretValue"]
    assert substituted(keys["Resource"]) == f"arn:aws:secretsmanager:eu-west-1:1:secret:{prefix}*"
    # A secret the policy does not cover is refused when the entry is read, not with AccessDenied per turn.
    entry = {"keySecret": "prod/payments"}
    with pytest.raises(Exception, match="keySecret must"):
        parse_app("sales", entry, secret_prefix=prefix)


def test_make_app_writes_where_the_stack_reads():
    from tools.add_app import OUTPUTS

    # make app takes the registry's path and the secrets' prefix from the deployed stack's outputs.
    outputs = template()["Outputs"]
    assert OUTPUTS == ("AppRegistryPath", "AppSecretPrefix")
    assert outputs["AppRegistryPath"]["Value"] == VARIABLES["APP_REGISTRY_PATH"]
    assert outputs["AppSecretPrefix"]["Value"] == VARIABLES["APP_SECRET_PREFIX"]
    assert substituted(VARIABLES["APP_SECRET_PREFIX"]) == "dify-relay/shop/apps/"
    assert substituted(VARIABLES["APP_REGISTRY_PATH"]) == "/dify-relay/shop/apps"


def gateway_routes() -> dict:
    """(path, method) -> the integration API Gateway is given, from the API definition SAM generates."""
    paths = expanded()["Resources"]["RelayApi"]["Properties"]["Body"]["paths"]
    return {
        (route, method): operation["x-amazon-apigateway-integration"]
        for route, item in paths.items()
        for method, operation in item.items()
    }


def test_every_route_of_the_default_app_has_its_twin_for_each_app():
    routes = gateway_routes()
    default = {(route, method) for route, method in routes if not route.startswith("/v1/apps/")}
    assert len(default) >= 20
    for route, method in default:
        twin = (route.replace("/v1/", "/v1/apps/{app}/", 1), method)
        assert twin in routes, twin
        # The same function, the same timeout and the same transfer mode (streamed or not).
        assert routes[twin] == routes[(route, method)], twin
    assert len(routes) == 2 * len(default)


def test_the_dashboard_splits_answers_and_errors_by_app():
    body = resource("RelayDashboard")["Properties"]["DashboardBody"]["Fn::Sub"]
    dashboard = json.loads(re.sub(r"\$\{([^}]+)\}", r"\1", body))
    searches = [
        row[0]["expression"]
        for widget in dashboard["widgets"]
        if widget["type"] == "metric"
        for row in widget["properties"]["metrics"]
        if isinstance(row[0], dict)
    ]
    assert any("{DifyRelay,App,service}" in s and 'MetricName="Answers"' in s for s in searches)
    assert any("{DifyRelay,App,code,service}" in s and 'MetricName="Errors"' in s for s in searches)
