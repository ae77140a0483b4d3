"""template.yaml agrees with the code it deploys."""

import json
import os
import re

import pytest

from relay.keys import PLACEHOLDER
from relay.settings import APP_MODES, UPSTREAM_MODES, Settings
from tests.support import ROOT, function, resource, template

FUNCTION = function("RelayFunction")


def test_function_runs_python_313_on_arm64_with_the_dependencies_and_relay_layers():
    assert FUNCTION["Runtime"] == "python3.13"
    assert FUNCTION["Architectures"] == ["arm64"]
    assert FUNCTION["Layers"] == [{"Ref": "DependenciesLayer"}, {"Ref": "RelayCodeLayer"}]
    # The shared package lives once, in the layer: the function's code holds only its handler.
    layer = resource("RelayCodeLayer")["Properties"]["ContentUri"]
    assert (ROOT / layer / "relay" / "turns.py").is_file()
    assert not (ROOT / FUNCTION["CodeUri"] / "relay").exists()
    module, _, function = FUNCTION["Handler"].rpartition(".")
    source = (ROOT / FUNCTION["CodeUri"] / f"{module}.py").read_text()
    assert f"def {function}(" in source


STREAM = function("StreamFunction")


def test_the_streaming_function_shares_runtime_layers_and_settings_and_starts_its_own_loop():
    for name in ("Runtime", "Architectures", "Layers", "Role", "ReservedConcurrentExecutions"):
        assert STREAM[name] == FUNCTION[name], name
    shared = set(FUNCTION["Environment"]["Variables"]) - {"GATEWAY_TIMEOUT_MS"}
    assert shared <= set(STREAM["Environment"]["Variables"])
    assert not (ROOT / STREAM["CodeUri"] / "relay").exists()
    module, _, handler = STREAM["Handler"].rpartition(".")
    assert f"def {handler}(" in (ROOT / STREAM["CodeUri"] / f"{module}.py").read_text()
    # Lambda runs the wrapper script from the function's code, which must be executable there.
    wrapper = STREAM["Environment"]["Variables"]["AWS_LAMBDA_EXEC_WRAPPER"]
    script = ROOT / STREAM["CodeUri"] / wrapper.removeprefix("/var/task/")
    assert wrapper.startswith("/var/task/") and script.is_file() and os.access(script, os.X_OK)
    assert "runtime_api.py" in script.read_text()


def test_a_streamed_turn_may_last_its_maximum_before_lambda_or_the_gateway_cut_it():
    maximum_s = int(STREAM["Environment"]["Variables"]["STREAM_MAX_SECONDS"])
    event = STREAM["Events"]["ChatStream"]["Properties"]
    assert event["ResponseTransferMode"] == "RESPONSE_STREAM"
    assert maximum_s * 1000 <= STREAM["Timeout"] * 1000 <= event["TimeoutInMillis"] <= 900_000
    # An edge-optimized endpoint would cut a quiet stream after 30 s; a regional one after 5 minutes.
    assert resource("RelayApi")["Properties"]["EndpointConfiguration"]["Type"] == "REGIONAL"


def test_function_gets_every_setting_the_relay_reads():
    variables = FUNCTION["Environment"]["Variables"]
    for name in (
        "DIFY_API_URL",
        "DIFY_APP_MODE",
        "DIFY_API_KEY_SECRET",
        "ALLOWED_ORIGINS",
        "SESSIONS_TABLE",
        "SESSION_TTL_SECONDS",
        "MAX_MESSAGE_CHARS",
        "UPSTREAM_MODE",
        "QUERY_INPUT",
        "ANSWER_OUTPUT",
        "DIFY_INPUTS",
        "ALLOWED_INPUTS",
    ):
        assert name in variables
    assert "DIFY_API_KEY" not in variables  # the key itself only ever lives in Secrets Manager


def test_modes_offered_are_the_ones_the_relay_accepts():
    assert tuple(template()["Parameters"]["DifyAppMode"]["AllowedValues"]) == APP_MODES
    assert tuple(template()["Parameters"]["UpstreamMode"]["AllowedValues"]) == UPSTREAM_MODES


def test_default_parameters_make_valid_settings():
    params = template()["Parameters"]
    variables = FUNCTION["Environment"]["Variables"]
    env = {
        name: str(params[value["Ref"]]["Default"])
        for name, value in variables.items()
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in params
    }
    settings = Settings.from_env(env | {"DIFY_API_KEY_SECRET": "arn:aws:secretsmanager:r:1:secret:k"})
    assert settings.default_app.dify_inputs == {} and settings.default_app.allowed_inputs == frozenset()
    assert settings.default_app.allowed_origins == ("http://localhost:8080",)


def statements():
    assert "Policies" not in FUNCTION  # the function's permissions are all in its own role
    assert FUNCTION["Role"] == {"Fn::GetAtt": ["RelayFunctionRole", "Arn"]}
    for policy in resource("RelayFunctionRole")["Properties"]["Policies"]:
        yield from policy["PolicyDocument"]["Statement"]


def test_policies_name_exact_actions_and_resources():
    granted = {action for statement in statements() for action in statement["Action"]}
    assert "secretsmanager:GetSecretValue" in granted
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"} <= granted
    assert {"logs:CreateLogStream", "logs:PutLogEvents"} <= granted
    refused = {"dynamodb:Scan", "dynamodb:Query", "secretsmanager:PutSecretValue", "logs:CreateLogGroup"}
    assert not refused & granted


def test_the_function_logs_to_the_stacks_log_group():
    assert FUNCTION["LoggingConfig"]["LogGroup"] == {"Ref": "RelayFunctionLogGroup"}
    # How long the group keeps the logs is the LogRetentionDays parameter (test_operations.py).
    assert resource("RelayFunctionLogGroup")["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_sessions_expire_through_the_table_ttl():
    props = resource("SessionsTable")["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}


def test_the_created_secret_starts_with_the_placeholder_the_relay_recognises():
    assert resource("DifyAppKeySecret")["Properties"]["SecretString"] == PLACEHOLDER


@pytest.mark.parametrize("kind", ["DEFAULT_4XX", "DEFAULT_5XX", "THROTTLED", "INTEGRATION_TIMEOUT"])
def test_gateway_generated_errors_carry_cors_and_the_error_envelope(kind):
    response = resource("RelayApi")["Properties"]["GatewayResponses"][kind]
    assert "Access-Control-Allow-Origin" in response["ResponseParameters"]["Headers"]
    body = response["ResponseTemplates"]["application/json"].replace("$context.error.messageString", '"m"')
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "retryable"}


def routes():
    return {
        (event["Properties"]["Path"], event["Properties"]["Method"].upper())
        for name in ("RelayFunction", "StreamFunction")
        for event in function(name)["Events"].values()
    }


@pytest.mark.parametrize("path", sorted((ROOT / "events").glob("*.json")), ids=lambda p: p.name)
def test_every_sample_event_is_a_route_of_the_api(path):
    event = json.loads(path.read_text())
    assert (event["resource"], event["httpMethod"]) in routes()
    assert event["requestContext"]["stage"] == resource("RelayApi")["Properties"]["StageName"]


def locked_requirements(path):
    """`name==version` and its hashes, for every requirement of a pip-compile file with hashes."""
    text = (ROOT / path).read_text().replace("\\\n", " ")
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    locked = {}
    for line in filter(None, lines):
        requirement, *options = line.split()
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][A-Za-z0-9.]*", requirement), line
        assert options and all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", o) for o in options), line
        locked[requirement] = options
    return locked


LOCKED = [
    "requirements/bootstrap.txt",
    "layers/deps/requirements.txt",
    "requirements/dev.txt",
    "requirements/audit.txt",
]


@pytest.mark.parametrize("path", LOCKED)
def test_dependencies_are_pinned_exactly_with_hashes(path):
    assert locked_requirements(path)


def test_the_layer_and_the_tests_use_the_same_runtime_dependencies():
    direct = [
        line
        for line in (ROOT / "requirements/layer.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert direct
    layer = locked_requirements("layers/deps/requirements.txt")
    dev = locked_requirements("requirements/dev.txt")
    for requirement in direct:
        assert requirement in layer and requirement in dev


def test_the_relay_answers_before_the_gateway_or_lambda_cut_the_call():
    variables = FUNCTION["Environment"]["Variables"]
    gateway_ms = int(variables["GATEWAY_TIMEOUT_MS"])
    integration_ms = FUNCTION["Events"]["ChatPost"]["Properties"]["TimeoutInMillis"]
    assert gateway_ms == integration_ms  # the budget the relay plans with is the gateway's real timeout
    assert FUNCTION["Timeout"] * 1000 >= gateway_ms  # Lambda never cuts before the gateway budget runs out
    assert 0 < int(variables["DEADLINE_MARGIN_MS"]) < gateway_ms


def test_every_route_of_the_widget_api_is_routed_by_the_gateway():
    from relay.openapi import document

    documented = {(path, method.upper()) for path, item in document()["paths"].items() for method in item}
    assert documented <= routes()
    # Routes a browser calls with a JSON body or a DELETE are preflighted.
    for path, method in documented:
        if method in ("POST", "DELETE"):
            assert (path, "OPTIONS") in routes()


def test_uploads_reach_the_function_as_bytes_and_answers_read_aloud_leave_as_audio():
    from local.apigw import BINARY_MEDIA_TYPES
    from relay.uploads import AUDIO, IMAGES
    from tests.template.expanded import expanded

    resources = expanded()["Resources"]
    [rest_api] = [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    declared = rest_api["Properties"]["Body"]["x-amazon-apigateway-binary-media-types"]
    # `make local` hands the handler the same bodies base64-encoded as API Gateway does.
    assert tuple(declared) == BINARY_MEDIA_TYPES
    for media in (*AUDIO, *IMAGES, "audio/mpeg"):
        mime_type = media if isinstance(media, str) else media.mime_type
        assert any(re.fullmatch(t.replace("*", ".+"), mime_type) for t in declared), mime_type
    assert not any(re.fullmatch(t.replace("*", ".+"), "application/json") for t in declared)
