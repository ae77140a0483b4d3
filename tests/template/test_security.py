"""template.yaml keeps the relay safe on the open internet: throttles, spend caps, WAF, least privilege."""

import json
import re

import pytest
import yaml

from relay.settings import Settings
from tests.support import ROOT, function, resource, template
from tests.template.expanded import expanded, of_type

PARAMETERS = template()["Parameters"]
FUNCTION = function("RelayFunction")
API = resource("RelayApi")["Properties"]

# The relay's abuse limits: environment variable -> (template parameter, default).
LIMITS = {
    "RATE_LIMIT_SESSION_PER_MINUTE": ("SessionRatePerMinute", 20),
    "RATE_LIMIT_SESSION_PER_DAY": ("SessionRatePerDay", 300),
    "RATE_LIMIT_IP_PER_MINUTE": ("IpRatePerMinute", 60),
    "RATE_LIMIT_IP_PER_DAY": ("IpRatePerDay", 2000),
    "MAX_BODY_BYTES": ("MaxBodyBytes", 32768),
    "REQUIRE_ORIGIN": ("RequireOrigin", "false"),
}

# checkov's IAM and concurrency checks: the audit must never skip these.
NEVER_SKIPPED = {f"CKV_AWS_{n}" for n in (60, 61, 62, 63, 107, 108, 109, 110, 111, 115)}


# X-Ray's write actions have no resource type: AWS documents Resource "*" for them.
XRAY_WRITE = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]

# Every other wildcard a policy may name: (role or policy, its actions, the resource), each for a
# name AWS only knows at run time.
WILDCARD_RESOURCES = [
    # Lambda names the function's log streams as it creates them, inside the stack's own group.
    (
        "RelayFunctionRole",
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        {
            "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}"
            ":log-group:${RelayFunctionLogGroup}:log-stream:*"
        },
    ),
    (
        "RelayFunctionRole",
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        {
            "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}"
            ":log-group:${StreamFunctionLogGroup}:log-stream:*"
        },
    ),
    # Each registered app's key, in its own secret under the stack's prefix; Secrets Manager adds
    # 6 random characters to each secret's ARN, so the prefix is all a policy can name.
    (
        "RelayFunctionRole",
        ["secretsmanager:GetSecretValue"],
        {
            "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
            ":secret:dify-relay/${AWS::StackName}/apps/*"
        },
    ),
    # CodeDeploy reads the provisioned concurrency of the version it shifts the live alias to;
    # versions are numbered as SAM publishes them, so: any qualifier of this one function.
    (
        "RelayDeploymentRole",
        ["lambda:GetProvisionedConcurrencyConfig"],
        {"Fn::Sub": "${RelayFunction.Arn}:*"},
    ),
]


def deployed() -> dict:
    """The template as SAM's transform hands it to CloudFormation (as `make audit` builds it)."""
    return expanded()


def test_stage_throttling_comes_from_its_parameters():
    (settings,) = API["MethodSettings"]
    assert (settings["ResourcePath"], settings["HttpMethod"]) == ("/*", "*")
    assert settings["ThrottlingRateLimit"] == {"Ref": "ThrottleRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ThrottleBurstLimit"}
    rate, burst = PARAMETERS["ThrottleRateLimit"], PARAMETERS["ThrottleBurstLimit"]
    assert (rate["Default"], burst["Default"]) == (20, 40)
    assert rate["MinValue"] >= 1 and burst["MinValue"] >= 1


def test_the_deployed_stage_carries_the_throttling():
    (stage,) = of_type("AWS::ApiGateway::Stage", deployed()["Resources"]).values()
    (settings,) = stage["Properties"]["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ThrottleRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ThrottleBurstLimit"}


def test_reserved_concurrency_caps_the_function():
    assert FUNCTION["ReservedConcurrentExecutions"] == {"Ref": "ReservedConcurrency"}
    parameter = PARAMETERS["ReservedConcurrency"]
    assert parameter["Type"] == "Number" and parameter["Default"] == 10 and parameter["MinValue"] == 1


def test_waf_resources_exist_only_when_enabled():
    assert template()["Conditions"]["CreateWaf"] == {"Fn::Equals": [{"Ref": "EnableWaf"}, "true"]}
    assert PARAMETERS["EnableWaf"]["Default"] == "false"
    assert sorted(PARAMETERS["EnableWaf"]["AllowedValues"]) == ["false", "true"]
    waf = [item for item in template()["Resources"].values() if item["Type"].startswith("AWS::WAFv2::")]
    assert sorted(item["Type"] for item in waf) == ["AWS::WAFv2::WebACL", "AWS::WAFv2::WebACLAssociation"]
    assert all(item.get("Condition") == "CreateWaf" for item in waf)
    assert template()["Outputs"]["WebAclArn"]["Condition"] == "CreateWaf"


def test_waf_blocks_an_ip_over_its_rate_with_the_error_envelope():
    acl = resource("RelayWebAcl")["Properties"]
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    assert acl["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True
    (rule,) = acl["Rules"]
    assert rule["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True
    limit = rule["Statement"]["RateBasedStatement"]
    assert limit["AggregateKeyType"] == "IP"
    assert limit["Limit"] == {"Ref": "WafRateLimitPer5Min"} and limit["EvaluationWindowSec"] == 300
    assert PARAMETERS["WafRateLimitPer5Min"]["Default"] == 300
    assert PARAMETERS["WafRateLimitPer5Min"]["MinValue"] >= 10  # AWS WAF's smallest rate limit
    response = rule["Action"]["Block"]["CustomResponse"]
    assert response["ResponseCode"] == 429
    body = acl["CustomResponseBodies"][response["CustomResponseBodyKey"]]
    assert body["ContentType"] == "APPLICATION_JSON"
    error = json.loads(body["Content"])["error"]
    assert error["code"] == "rate_limited" and error["retryable"] is True and error["message"]


def test_waf_association_targets_the_stage_after_it_exists():
    association = resource("RelayWebAclAssociation")
    stage_name = API["StageName"]
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": ["RelayWebAcl", "Arn"]}
    stage_arn = "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${RelayApi}/stages/"
    assert association["Properties"]["ResourceArn"] == {"Fn::Sub": stage_arn + stage_name}
    deployed_resources = deployed()["Resources"]
    (stage_id,) = of_type("AWS::ApiGateway::Stage", deployed_resources)
    assert deployed_resources[stage_id]["Properties"]["StageName"] == stage_name
    depends_on = association["DependsOn"]
    assert stage_id in ([depends_on] if isinstance(depends_on, str) else depends_on)


def iam_statements():
    """Every statement of every IAM policy CloudFormation would create, SAM-generated ones included."""
    for name, item in deployed()["Resources"].items():
        properties = item.get("Properties", {})
        if item["Type"] == "AWS::IAM::Role":
            yield name, properties["AssumeRolePolicyDocument"]["Statement"]
            for policy in properties.get("Policies", []):
                yield name, policy["PolicyDocument"]["Statement"]
        elif item["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield name, properties["PolicyDocument"]["Statement"]


def listed(value) -> list:
    return value if isinstance(value, list) else [value]


def test_iam_policies_grant_no_wildcard_actions_or_resources():
    statements = [(name, statement) for name, group in iam_statements() for statement in group]
    # Two trust policies; logs, the secret and the table; the alias, versions and alarms; X-Ray.
    assert len(statements) >= 9
    wildcards = []
    for name, statement in statements:
        assert not {"NotAction", "NotResource", "NotPrincipal"} & set(statement), name
        actions = sorted(listed(statement["Action"]))
        assert all("*" not in action for action in actions), (name, statement)
        for target in listed(statement.get("Resource", [])):
            text = json.dumps(target)
            if target == "*":
                wildcards.append((name, actions, target))
                # Only trace data, and only from a policy that exists while tracing is switched on.
                assert name == "RelayTracingPolicy" and actions == XRAY_WRITE, (name, statement)
                assert deployed()["Resources"][name]["Condition"] == "TracingEnabled"
                continue
            assert '"*"' not in text, (name, statement)
            if "*" in text:
                wildcards.append((name, actions, target))
                assert [name, actions, target] in [list(w) for w in WILDCARD_RESOURCES], (name, statement)
    # Each exception is still needed; one that no longer matches anything should go.
    assert len(wildcards) == len(WILDCARD_RESOURCES) + 1


def test_no_role_takes_a_managed_policy():
    # AWSLambdaBasicExecutionRole, which SAM would attach to a role it generates for the function,
    # allows logs actions on "*"; AWSCodeDeployRoleForLambda, which it would attach to a
    # CodeDeployServiceRole it generates for DeploymentPreference, updates any alias, reads any alarm
    # and publishes to any SNS topic. The template brings its own role for both.
    roles = of_type("AWS::IAM::Role", deployed()["Resources"])
    assert sorted(roles) == ["RelayDeploymentRole", "RelayFunctionRole"]
    assert all(not role["Properties"].get("ManagedPolicyArns") for role in roles.values())
    services = {
        "RelayFunctionRole": "lambda.amazonaws.com",
        "RelayDeploymentRole": "codedeploy.amazonaws.com",
    }
    for name, service in services.items():
        (trust,) = roles[name]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": service} and trust["Action"] == "sts:AssumeRole"
    policies = of_type("AWS::IAM::Policy", deployed()["Resources"])
    assert list(policies) == ["RelayTracingPolicy"]
    assert policies["RelayTracingPolicy"]["Properties"]["Roles"] == [{"Ref": "RelayFunctionRole"}]


def test_the_function_gets_every_abuse_limit_from_its_parameter():
    variables = FUNCTION["Environment"]["Variables"]
    for variable, (parameter, default) in LIMITS.items():
        assert variables[variable] == {"Ref": parameter}
        assert PARAMETERS[parameter]["Default"] == default
    for parameter in ("SessionRatePerMinute", "SessionRatePerDay", "IpRatePerMinute", "IpRatePerDay"):
        assert PARAMETERS[parameter]["MinValue"] == 0  # 0 turns that limit off
    assert sorted(PARAMETERS["RequireOrigin"]["AllowedValues"]) == ["false", "true"]


def settings_from(values: dict[str, str]) -> Settings:
    return Settings.from_env(values | {"DIFY_API_KEY_SECRET": "arn:aws:secretsmanager:r:1:secret:k"})


def test_the_relay_reads_the_limits_the_template_sets():
    settings = settings_from(
        {
            "RATE_LIMIT_SESSION_PER_MINUTE": "7",
            "RATE_LIMIT_SESSION_PER_DAY": "70",
            "RATE_LIMIT_IP_PER_MINUTE": "9",
            "RATE_LIMIT_IP_PER_DAY": "90",
            "MAX_BODY_BYTES": "4096",
            "REQUIRE_ORIGIN": "true",
        }
    )
    budgets = settings.default_app.rate_budgets
    assert (budgets.session_per_minute, budgets.session_per_day) == (7, 70)
    assert (budgets.ip_per_minute, budgets.ip_per_day) == (9, 90)
    assert settings.max_body_bytes == 4096 and settings.require_origin is True


def test_the_smallest_values_the_template_allows_are_accepted_by_the_relay():
    smallest = {
        variable: str(PARAMETERS[parameter]["MinValue"])
        for variable, (parameter, _) in LIMITS.items()
        if "MinValue" in PARAMETERS[parameter]
    }
    assert "MAX_BODY_BYTES" in smallest
    settings_from(smallest)


@pytest.mark.parametrize(
    ("origins", "accepted"),
    [
        ("http://localhost:8080", True),
        ("https://*.example.com", True),
        ("https://www.example.com, https://*.example.com,https://example.com:8443", True),
        ("*", False),
        ("https://*", False),
        ("https://www.*.example.com", False),
        ("https://example.com/chat", False),
        ("example.com", False),
    ],
)
def test_allowed_origins_admit_exact_and_wildcard_subdomain_origins(origins, accepted):
    parameter = PARAMETERS["AllowedOrigins"]
    assert bool(re.fullmatch(parameter["AllowedPattern"], origins)) is accepted
    assert "https://*." in parameter["Description"]


def checkov_config() -> tuple[dict, list[str]]:
    text = (ROOT / ".checkov.yaml").read_text()
    return yaml.safe_load(text), text.splitlines()


def test_every_skipped_checkov_check_says_why():
    config, lines = checkov_config()
    skipped = config["skip-check"]
    assert skipped and len(set(skipped)) == len(skipped)
    for check in skipped:
        assert re.fullmatch(r"CKV2?_AWS_\d+", check)
        (line,) = [line for line in lines if re.match(rf"\s*-\s*{check}\s", line + " ")]
        _, _, reason = line.partition("#")
        assert len(reason.split()) >= 5, f"{check} needs a reason"


def test_the_audit_never_skips_the_iam_or_concurrency_checks():
    config, _ = checkov_config()
    assert not NEVER_SKIPPED & set(config["skip-check"])
    assert config["framework"] == ["cloudformation"]
    assert "soft-fail" not in config and "soft-fail-on" not in config


def test_make_test_runs_the_audit_with_the_skip_list():
    makefile = (ROOT / "Makefile").read_text()
    (test_rule,) = re.findall(r"^test:(.*)$", makefile, re.MULTILINE)
    assert "audit" in test_rule.split()
    assert "checkov --config-file .checkov.yaml" in makefile
    assert "bandit -r functions layers/relay local" in makefile
