"""template.yaml operates the relay: JSON logs kept for a set time, alarms, a dashboard, safe rollouts
and tracing on demand."""

import json
import os
import re
import warnings
from unittest import mock

import pytest

from relay.errors import ErrorKind
from relay.telemetry import NAMESPACE
from tests.support import ROOT, function, resource, template
from tests.template.expanded import expanded, of_type

PARAMETERS = template()["Parameters"]
FUNCTION = function("RelayFunction")
API = resource("RelayApi")["Properties"]
SERVICE = FUNCTION["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]

# CloudWatch Logs' retention periods (days), the only values a log group accepts.
CLOUDWATCH_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827]
CLOUDWATCH_RETENTION_DAYS += [2192, 2557, 2922, 3288, 3653]

# The alarms that stop a deployment and roll the live alias back, and the one that does not.
ROLLBACK_ALARMS = {"ApiErrorRateAlarm", "UpstreamErrorRateAlarm", "ThrottlesAlarm", "DurationAlarm"}
ALARMS = ROLLBACK_ALARMS | {"RateLimitedAlarm"}
ERROR_CODES = {kind.code for kind in ErrorKind}
# Every metric the relay publishes (relay/telemetry.py and its callers).
RELAY_METRICS = ["Answers", "Errors", "UpstreamRetries", "UpstreamTimeouts", "ConversationResets"]
RELAY_METRICS += ["StoreDegradations", "KeyFetchFailures", "UpstreamLatency"]


def alarm(name: str) -> dict:
    return resource(name)["Properties"]


def watched(name: str) -> list[dict]:
    """The metrics an alarm reads: {namespace, name, dimensions, stat}, for a plain or a math alarm."""
    properties = alarm(name)
    if "Metrics" not in properties:
        stat = properties.get("Statistic") or properties.get("ExtendedStatistic")
        return [_metric(properties["Namespace"], properties["MetricName"], properties["Dimensions"], stat)]
    return [
        _metric(
            query["MetricStat"]["Metric"]["Namespace"],
            query["MetricStat"]["Metric"]["MetricName"],
            query["MetricStat"]["Metric"]["Dimensions"],
            query["MetricStat"]["Stat"],
            query["Id"],
        )
        for query in properties["Metrics"]
        if "MetricStat" in query
    ]


def _metric(namespace, name, dimensions, stat, query_id=None) -> dict:
    return {
        "namespace": namespace,
        "name": name,
        "dimensions": {item["Name"]: item["Value"] for item in dimensions},
        "stat": stat,
        "id": query_id,
    }


def expression(name: str) -> str:
    (returned,) = [query for query in alarm(name)["Metrics"] if query.get("ReturnData")]
    return " ".join(returned["Expression"].split())


# ---- logs ----


def test_the_log_group_keeps_logs_for_the_retention_parameter():
    assert resource("RelayFunctionLogGroup")["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    parameter = PARAMETERS["LogRetentionDays"]
    assert parameter["Type"] == "Number" and parameter["Default"] == 30
    assert parameter["AllowedValues"] == CLOUDWATCH_RETENTION_DAYS


def test_the_function_writes_json_logs_through_a_filter_that_keeps_the_metrics():
    logging = FUNCTION["LoggingConfig"]
    assert logging["LogFormat"] == "JSON"
    assert logging["ApplicationLogLevel"] == {
        "Fn::FindInMap": ["LambdaLogLevel", {"Ref": "LogLevel"}, "Application"]
    }
    assert logging["SystemLogLevel"] == "INFO"  # START, END and REPORT lines, with the durations
    levels = template()["Mappings"]["LambdaLogLevel"]
    assert set(levels) == set(PARAMETERS["LogLevel"]["AllowedValues"])
    # EMF records carry no level and Lambda files them as INFO: a filter above INFO would drop them.
    for log_level, row in levels.items():
        assert row["Application"] == ("DEBUG" if log_level == "DEBUG" else "INFO"), log_level


@pytest.mark.parametrize("log_level", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
def test_powertools_logs_at_the_level_lambda_lets_through(log_level):
    from aws_lambda_powertools import Logger

    lambda_level = template()["Mappings"]["LambdaLogLevel"][log_level]["Application"]
    environment = {"AWS_LAMBDA_LOG_LEVEL": lambda_level, "POWERTOOLS_LOG_LEVEL": log_level}
    with mock.patch.dict(os.environ, environment), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logger = Logger(service=f"template-log-level-{log_level.lower()}")
    assert logger.log_level == {"DEBUG": 10, "INFO": 20}[lambda_level]
    assert not [w for w in caught if "Advanced Logging Controls" in str(w.message)]


# ---- alarms ----


def test_every_named_signal_has_an_alarm():
    assert set(of_type("AWS::CloudWatch::Alarm", template()["Resources"])) == ALARMS
    signals = {name: {(m["namespace"], m["name"]) for m in watched(name)} for name in ALARMS}
    assert signals["ApiErrorRateAlarm"] == {("AWS/ApiGateway", "5XXError"), ("AWS/ApiGateway", "Count")}
    assert signals["ThrottlesAlarm"] == {("AWS/Lambda", "Throttles")}
    assert signals["UpstreamErrorRateAlarm"] == {(NAMESPACE, "Answers"), (NAMESPACE, "Errors")}
    assert signals["DurationAlarm"] == {("AWS/Lambda", "Duration")}
    assert signals["RateLimitedAlarm"] == {(NAMESPACE, "Errors")}


def test_every_alarm_is_named_after_the_stack_and_ignores_quiet_minutes():
    for name in ALARMS:
        properties = alarm(name)
        assert properties["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), name
        assert properties["TreatMissingData"] == "notBreaching", name
        assert properties["AlarmDescription"], name


def test_relay_metric_alarms_read_the_service_and_codes_the_relay_publishes():
    relay_metrics = [m for name in ALARMS for m in watched(name) if m["namespace"] == NAMESPACE]
    assert len(relay_metrics) == 4
    for metric in relay_metrics:
        assert metric["dimensions"]["service"] == SERVICE
        if metric["name"] == "Errors":
            assert metric["dimensions"]["code"] in ERROR_CODES
            assert set(metric["dimensions"]) == {"service", "code"}
        else:
            assert set(metric["dimensions"]) == {"service"}
    codes = {m["dimensions"].get("code") for name in ALARMS for m in watched(name)} - {None}
    assert codes == {"upstream_error", "upstream_timeout", "rate_limited"}


def test_gateway_and_lambda_alarms_watch_this_stacks_api_and_function():
    for name in ALARMS:
        for metric in watched(name):
            if metric["namespace"] == "AWS/ApiGateway":
                assert metric["dimensions"] == {"ApiName": API["Name"], "Stage": API["StageName"]}
            if metric["namespace"] == "AWS/Lambda":
                assert metric["dimensions"] == {"FunctionName": {"Ref": "RelayFunction"}}


def test_the_api_error_alarm_is_a_rate_of_5xx_answers():
    metrics = {m["id"]: m for m in watched("ApiErrorRateAlarm")}
    assert (metrics["errors"]["name"], metrics["errors"]["stat"]) == ("5XXError", "Sum")
    assert (metrics["requests"]["name"], metrics["requests"]["stat"]) == ("Count", "Sum")
    assert expression("ApiErrorRateAlarm") == "IF(requests >= 5, 100 * errors / requests, 0)"
    assert alarm("ApiErrorRateAlarm")["ComparisonOperator"] == "GreaterThanThreshold"
    assert 0 < alarm("ApiErrorRateAlarm")["Threshold"] < 100  # a percentage


def test_the_upstream_alarm_is_a_rate_of_failed_turns():
    metrics = {m["id"]: m for m in watched("UpstreamErrorRateAlarm")}
    assert metrics["answered"]["name"] == "Answers"
    assert metrics["failed"]["dimensions"]["code"] == "upstream_error"
    assert metrics["timedout"]["dimensions"]["code"] == "upstream_timeout"
    assert all(metric["stat"] == "Sum" for metric in metrics.values())
    text = expression("UpstreamErrorRateAlarm")
    turns = "FILL(answered, 0) + FILL(failed, 0) + FILL(timedout, 0)"
    assert text == f"IF({turns} >= 5, 100 * (FILL(failed, 0) + FILL(timedout, 0)) / ({turns}), 0)"
    assert 0 < alarm("UpstreamErrorRateAlarm")["Threshold"] < 100


def test_math_alarms_return_one_series_and_refer_only_to_their_own_queries():
    for name in ALARMS:
        queries = alarm(name).get("Metrics")
        if queries is None:
            continue
        ids = {query["Id"] for query in queries}
        assert sum(1 for query in queries if query.get("ReturnData")) == 1, name
        named = set(re.findall(r"\b[a-z][a-zA-Z0-9_]*\b", expression(name))) - {"IF", "FILL"}
        assert named <= ids, (name, named - ids)
        for query in queries:
            if "MetricStat" in query:
                assert query["ReturnData"] is False and query["MetricStat"]["Period"] == 60, name


def test_the_duration_alarm_fires_before_the_relay_runs_out_of_time():
    properties = alarm("DurationAlarm")
    assert properties["ExtendedStatistic"] == "p99" and properties["Unit"] == "Milliseconds"
    variables = FUNCTION["Environment"]["Variables"]
    answers_by_ms = int(variables["GATEWAY_TIMEOUT_MS"]) - int(variables["DEADLINE_MARGIN_MS"])
    assert answers_by_ms == 27_500
    assert 0.8 * answers_by_ms <= properties["Threshold"] < answers_by_ms < FUNCTION["Timeout"] * 1000
    assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_the_throttle_alarm_counts_refused_invocations():
    properties = alarm("ThrottlesAlarm")
    assert (properties["Statistic"], properties["Threshold"]) == ("Sum", 1)
    assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_the_rate_limit_alarm_counts_429s_against_its_parameter():
    properties = alarm("RateLimitedAlarm")
    assert properties["Threshold"] == {"Ref": "RateLimitedAlarmThreshold"}
    assert (properties["Statistic"], properties["Period"]) == ("Sum", 300)
    assert PARAMETERS["RateLimitedAlarmThreshold"]["Default"] == 100
    assert PARAMETERS["RateLimitedAlarmThreshold"]["MinValue"] >= 1


def test_alarms_notify_a_topic_only_when_an_email_is_given():
    assert template()["Conditions"]["NotifyByEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]
    }
    assert PARAMETERS["AlarmEmail"]["Default"] == ""
    topic, subscription = resource("AlarmTopic"), resource("AlarmEmailSubscription")
    assert topic["Condition"] == subscription["Condition"] == "NotifyByEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    notify = {"Fn::If": ["NotifyByEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}
    for name in ALARMS:
        assert alarm(name)["AlarmActions"] == alarm(name)["OKActions"] == notify, name
    assert template()["Outputs"]["AlarmTopicArn"]["Condition"] == "NotifyByEmail"


@pytest.mark.parametrize(
    ("email", "accepted"),
    [("", True), ("ops@example.com", True), ("ops@example", False), ("a@example.com,b@example.com", False)],
)
def test_alarm_email_takes_one_address_or_nothing(email, accepted):
    assert bool(re.fullmatch(PARAMETERS["AlarmEmail"]["AllowedPattern"], email)) is accepted


def test_the_metrics_the_template_reads_are_the_ones_the_relay_publishes():
    code = (ROOT / FUNCTION["CodeUri"], ROOT / resource("RelayCodeLayer")["Properties"]["ContentUri"])
    sources = "\n".join(path.read_text() for root in code for path in root.rglob("*.py"))
    published = set(re.findall(r'(?:count|_add)\("(\w+)"|name="(\w+)"', sources))
    published = {name for pair in published for name in pair if name and name != "code"}
    assert set(RELAY_METRICS) <= published  # nothing shown or alarmed on that the relay no longer sends


def test_the_dashboard_shows_every_relay_metric_and_every_alarm():
    body = resource("RelayDashboard")["Properties"]["DashboardBody"]["Fn::Sub"]
    placeholders = set(re.findall(r"\$\{([^}]+)\}", body))
    assert placeholders == {f"{name}.Arn" for name in ALARMS} | {
        "AWS::Region",
        "AWS::StackName",
        "RelayFunction",
    }
    dashboard = json.loads(re.sub(r"\$\{([^}]+)\}", r"\1", body))
    for metric in RELAY_METRICS:  # named in a metric row, or (Errors by code) in a SEARCH expression
        assert re.search(rf'\\?"{metric}\\?"', body), metric
    (alarms,) = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    assert sorted(alarms["properties"]["alarms"]) == sorted(f"{name}.Arn" for name in ALARMS)
    assert template()["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"].endswith("${RelayDashboard}")


# ---- safe rollout ----


def test_every_deployment_goes_through_the_live_alias_and_rolls_back_on_the_alarms():
    assert FUNCTION["AutoPublishAlias"] == "live"
    preference = FUNCTION["DeploymentPreference"]
    assert preference["Type"] == {"Ref": "DeploymentType"}
    assert {alarm["Ref"] for alarm in preference["Alarms"]} == ROLLBACK_ALARMS
    assert len(preference["Alarms"]) == len(ROLLBACK_ALARMS)
    (group,) = of_type("AWS::CodeDeploy::DeploymentGroup", expanded()["Resources"]).values()
    configuration = group["Properties"]["AlarmConfiguration"]
    assert configuration["Enabled"] is True
    assert {alarm["Name"]["Ref"] for alarm in configuration["Alarms"]} == ROLLBACK_ALARMS
    rollback = group["Properties"]["AutoRollbackConfiguration"]
    assert rollback["Enabled"] is True and "DEPLOYMENT_STOP_ON_ALARM" in rollback["Events"]


def test_rate_limit_spikes_alarm_but_never_block_a_deployment():
    # Abuse says nothing about a release, and it must not stop a fix from going out.
    assert {"RateLimitedAlarm"} == ALARMS - ROLLBACK_ALARMS


@pytest.mark.parametrize(
    "deployment_type", ["AllAtOnce", "Canary10Percent5Minutes", "Linear10PercentEvery1Minute"]
)
def test_the_deployment_type_parameter_picks_the_codedeploy_configuration(deployment_type):
    assert deployment_type in PARAMETERS["DeploymentType"]["AllowedValues"]
    resources = expanded((("DeploymentType", deployment_type),))["Resources"]
    (group,) = of_type("AWS::CodeDeploy::DeploymentGroup", resources).values()
    config = group["Properties"]["DeploymentConfigName"]["Fn::Sub"]
    assert (
        config[0].replace("${ConfigName}", config[1]["ConfigName"])
        == f"CodeDeployDefault.Lambda{deployment_type}"
    )
    assert PARAMETERS["DeploymentType"]["Default"] == "AllAtOnce"


def test_codedeploy_uses_the_stacks_own_narrow_role():
    assert FUNCTION["DeploymentPreference"]["Role"] == {"Fn::GetAtt": ["RelayDeploymentRole", "Arn"]}
    resources = expanded()["Resources"]
    assert "CodeDeployServiceRole" not in resources  # the role SAM generates with a managed policy
    (group,) = of_type("AWS::CodeDeploy::DeploymentGroup", resources).values()
    assert group["Properties"]["ServiceRoleArn"] == {"Fn::GetAtt": ["RelayDeploymentRole", "Arn"]}
    (policy,) = resource("RelayDeploymentRole")["Properties"]["Policies"]
    grants = {}
    for statement in policy["PolicyDocument"]["Statement"]:
        for action in statement["Action"]:
            grants[action] = statement["Resource"]
    assert set(grants) == {
        "lambda:GetAlias",
        "lambda:UpdateAlias",
        "lambda:GetProvisionedConcurrencyConfig",
        "cloudwatch:DescribeAlarms",
    }
    live = [{"Fn::GetAtt": ["RelayFunction", "Arn"]}, {"Fn::Sub": "${RelayFunction.Arn}:live"}]
    assert grants["lambda:UpdateAlias"] == grants["lambda:GetAlias"] == live
    assert sorted(r["Fn::GetAtt"][0] for r in grants["cloudwatch:DescribeAlarms"]) == sorted(ROLLBACK_ALARMS)


def test_the_api_invokes_the_live_aliases_the_streamed_route_with_response_streaming():
    resources = expanded()["Resources"]
    aliases = of_type("AWS::Lambda::Alias", resources)
    assert set(aliases) == {"RelayFunctionAliaslive", "StreamFunctionAliaslive"}
    assert all(alias["Properties"]["Name"] == "live" for alias in aliases.values())
    # CodeDeploy shifts the JSON function gradually; the streaming function moves at once.
    assert "CodeDeployLambdaAliasUpdate" in aliases["RelayFunctionAliaslive"]["UpdatePolicy"]
    integrations = {
        (route, method): operation["x-amazon-apigateway-integration"]
        for route, path in resources["RelayApi"]["Properties"]["Body"]["paths"].items()
        for method, operation in path.items()
    }
    for (route, method), integration in integrations.items():
        uri = integration["uri"]["Fn::Sub"]
        if (route, method) in (("/v1/chat/stream", "post"), ("/v1/apps/{app}/chat/stream", "post")):
            assert uri.endswith("/functions/${StreamFunctionAliaslive}/response-streaming-invocations")
            assert integration["responseTransferMode"] == "STREAM"
        else:
            assert uri.endswith("/functions/${RelayFunctionAliaslive}/invocations"), route
            assert "responseTransferMode" not in integration
    permissions = of_type("AWS::Lambda::Permission", resources).values()
    assert permissions and all(
        p["Properties"]["FunctionName"] in ({"Ref": a} for a in aliases) for p in permissions
    )


# ---- tracing ----


def test_tracing_is_off_by_default_and_switched_by_one_parameter():
    assert PARAMETERS["EnableTracing"]["Default"] == "false"
    assert sorted(PARAMETERS["EnableTracing"]["AllowedValues"]) == ["false", "true"]
    assert template()["Conditions"]["TracingEnabled"] == {"Fn::Equals": [{"Ref": "EnableTracing"}, "true"]}
    assert FUNCTION["Tracing"] == {"Fn::If": ["TracingEnabled", "Active", "PassThrough"]}
    assert API["TracingEnabled"] == {"Fn::If": ["TracingEnabled", True, False]}
    (stage,) = of_type("AWS::ApiGateway::Stage", expanded()["Resources"]).values()
    assert stage["Properties"]["TracingEnabled"] == {"Fn::If": ["TracingEnabled", True, False]}
    function = expanded()["Resources"]["RelayFunction"]["Properties"]
    assert function["TracingConfig"] == {"Mode": {"Fn::If": ["TracingEnabled", "Active", "PassThrough"]}}


def test_only_tracing_brings_the_xray_permissions():
    policy = resource("RelayTracingPolicy")
    assert policy["Condition"] == "TracingEnabled"
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(statement["Action"]) == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    always = json.dumps(resource("RelayFunctionRole")["Properties"])
    assert "xray:" not in always


def test_tracing_off_costs_no_cold_start():
    # Nothing in the function loads Powertools' Tracer (and with it the X-Ray SDK).
    sources = (ROOT / FUNCTION["CodeUri"]).rglob("*.py")
    loading = [
        path
        for path in sources
        if re.search(r"\bTracer\b|aws_xray_sdk|powertools\.tracing", path.read_text())
    ]
    assert not loading
