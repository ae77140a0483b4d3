"""How the relay is deployed: the two environments of samconfig.toml and the GitHub workflows.

GitHub's workflow schema and zizmor's audits run on the workflows in `make workflows` (part of
`make test`); these tests pin what those tools cannot know: which stacks, which permissions, which
commands.
"""

import json
import re
import shlex
import tomllib

import pytest
import yaml

from tests.support import ROOT, template

PARAMETERS = template()["Parameters"]
WORKFLOWS = ROOT / ".github" / "workflows"
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+\s*$")


def samconfig() -> dict:
    return tomllib.loads((ROOT / "samconfig.toml").read_text())


def overrides(environment: str) -> dict[str, str]:
    text = samconfig()[environment]["deploy"]["parameters"]["parameter_overrides"]
    return dict(item.split("=", 1) for item in shlex.split(text))


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def triggers(document: dict) -> dict:
    return document.get("on", document.get(True))  # YAML 1.1 reads a bare `on` as true


def steps(document: dict, job: str) -> list[dict]:
    return document["jobs"][job]["steps"]


def runs(document: dict, job: str) -> str:
    return "\n".join(step.get("run", "") for step in steps(document, job))


def using(document: dict, job: str, action: str) -> dict:
    (step,) = [step for step in steps(document, job) if step.get("uses", "").startswith(f"{action}@")]
    return step


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


# ---- the workflows ----


def test_both_workflows_exist():
    assert sorted(path.name for path in WORKFLOWS.glob("*.yml")) == ["ci.yml", "deploy.yml"]


def test_make_test_checks_the_workflows_offline():
    makefile = (ROOT / "Makefile").read_text()
    (test_rule,) = re.findall(r"^test:(.*)$", makefile, re.MULTILINE)
    assert {"workflows", "build-check"} <= set(test_rule.split())
    assert "check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)" in makefile
    assert re.search(r"zizmor --offline .*\$\(WORKFLOWS\)", makefile)
    locked = (ROOT / "requirements" / "audit.txt").read_text()
    assert re.search(r"^check-jsonschema==", locked, re.MULTILINE) and re.search(
        r"^zizmor==", locked, re.MULTILINE
    )


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_every_action_is_pinned_to_a_commit_with_its_version(name):
    lines = [
        line for line in (WORKFLOWS / name).read_text().splitlines() if re.match(r"\s*(-\s+)?uses:", line)
    ]
    remote = [line for line in lines if "./.github/" not in line]
    assert remote
    for line in remote:
        assert PINNED.match(line), line


def test_an_action_is_pinned_to_one_commit_everywhere():
    pins = {}
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text().splitlines():
            if match := PINNED.match(line):
                pins.setdefault(match[1], set()).add(match[2])
    assert set(pins) == {"actions/checkout", "actions/setup-python", "aws-actions/configure-aws-credentials"}
    assert all(len(commits) == 1 for commits in pins.values()), pins


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_no_expression_is_spliced_into_a_script(name):
    document = workflow(name)
    for job in document["jobs"].values():
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", ""), step


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_checkouts_keep_no_credentials(name):
    document = workflow(name)
    for job_name, job in document["jobs"].items():
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, job_name


def test_ci_runs_make_test_and_sam_build_on_pull_requests_and_pushes():
    document = workflow("ci.yml")
    on = triggers(document)
    assert {"pull_request", "push", "workflow_call"} <= set(on)
    assert on["push"]["branches"] == ["main"]
    assert document["permissions"] == {"contents": "read"}
    assert document["jobs"]["test"]["permissions"] == {"contents": "read"}
    commands = [step["run"] for step in steps(document, "test") if "run" in step]
    assert commands == ["make test", "make build"]
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")  # the same checks as .ci/run


@pytest.mark.parametrize(("name", "job"), [("ci.yml", "test"), ("deploy.yml", "dev"), ("deploy.yml", "prod")])
def test_python_313_for_sam_build_and_311_as_python3(name, job):
    versions = using(workflow(name), job, "actions/setup-python")["with"]["python-version"].split()
    assert "3.13" in versions  # the function's runtime, which sam build needs on PATH
    assert versions[-1] == "3.11"  # the last one listed is python3, which the locks are made for


def test_deploy_grants_nothing_by_default_and_each_job_only_what_it_needs():
    document = workflow("deploy.yml")
    assert document["permissions"] == {}
    jobs = document["jobs"]
    assert jobs["test"]["permissions"] == {"contents": "read"}
    assert jobs["test"]["uses"] == "./.github/workflows/ci.yml"
    for job in ("dev", "prod"):
        assert jobs[job]["permissions"] == {"contents": "read", "id-token": "write"}, job
        assert jobs[job]["needs"] == "test", job


def test_dev_deploys_on_pushes_to_main_and_prod_on_tags_or_by_hand_behind_approval():
    document = workflow("deploy.yml")
    on = triggers(document)
    assert on["push"] == {"branches": ["main"], "tags": ["v*"]}
    assert "workflow_dispatch" in on
    dev, prod = document["jobs"]["dev"], document["jobs"]["prod"]
    assert dev["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert "environment" not in dev
    condition = " ".join(prod["if"].split())
    assert "startsWith(github.ref, 'refs/tags/v')" in condition and "workflow_dispatch" in condition
    assert "refs/heads/main" in condition
    assert prod["environment"] == "prod"  # required reviewers are set on this environment
    for job in (dev, prod):
        assert job["concurrency"]["cancel-in-progress"] is False


@pytest.mark.parametrize(("job", "environment"), [("dev", "default"), ("prod", "prod")])
def test_each_deploy_job_builds_and_deploys_its_environment_without_prompts(job, environment):
    document = workflow("deploy.yml")
    env = document["jobs"][job]["env"]
    assert env["CONFIG_ENV"] == environment
    assert env["STACK_NAME"] == samconfig()[environment]["global"]["parameters"]["stack_name"]
    script = runs(document, job)
    assert "make build" in script
    deploy = [line for line in script.splitlines() if "sam deploy" in line]
    assert deploy == [
        '.venv/bin/sam deploy --config-env "$CONFIG_ENV" --no-confirm-changeset --no-fail-on-empty-changeset'
    ]
    assert script.index("make build") < script.index("sam deploy")


@pytest.mark.parametrize("job", ["dev", "prod"])
def test_aws_access_is_an_oidc_role_from_repository_variables(job):
    document = workflow("deploy.yml")
    credentials = using(document, job, "aws-actions/configure-aws-credentials")["with"]
    assert credentials["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    assert credentials["aws-region"] == "${{ vars.AWS_REGION }}"
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert "secrets." not in text and "aws-access-key-id" not in text and "aws-secret-access-key" not in text


@pytest.mark.parametrize(("job", "variable"), [("dev", "DEV_SMOKE_ORIGIN"), ("prod", "PROD_SMOKE_ORIGIN")])
def test_the_smoke_test_posts_to_the_stacks_chat_url_after_the_deploy(job, variable):
    document = workflow("deploy.yml")
    assert document["jobs"][job]["env"]["SMOKE_ORIGIN"] == f"${{{{ vars.{variable} }}}}"
    script = runs(document, job)
    assert script.index("sam deploy") < script.index("smoke_test.py")
    assert 'aws cloudformation describe-stacks --stack-name "$STACK_NAME"' in script
    assert "OutputKey=='ChatUrl'" in script and "ParameterKey=='AllowedOrigins'" in script
    assert 'python3 .github/scripts/smoke_test.py "$CHAT_URL"' in script
    assert '--origin "$SMOKE_ORIGIN" --allowed-origins "$ALLOWED_ORIGINS"' in script


# ---- the README's deploy role ----

# The service behind each resource type the stack creates (SAM's expansion included).
SERVICES = {
    "AWS::ApiGateway": "apigateway",
    "AWS::CloudWatch": "cloudwatch",
    "AWS::CodeDeploy": "codedeploy",
    "AWS::DynamoDB": "dynamodb",
    "AWS::IAM": "iam",
    "AWS::Lambda": "lambda",
    "AWS::Logs": "logs",
    "AWS::SNS": "sns",
    "AWS::SecretsManager": "secretsmanager",
    "AWS::WAFv2": "wafv2",
}


def readme_policies() -> tuple[dict, dict]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Continuous deployment\n") :]
    section = section[: section.index("\n## ", 1)] if "\n## " in section[1:] else section
    trust, permissions = (json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.S))
    return trust, permissions


def test_the_deploy_roles_trust_policy_admits_main_and_the_prod_environment_only():
    trust, _ = readme_policies()
    (statement,) = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    provider = "arn:aws:iam::ACCOUNT_ID:oidc-provider/token.actions.githubusercontent.com"
    assert statement["Principal"] == {"Federated": provider}
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": [
                "repo:OWNER/REPO:ref:refs/heads/main",
                "repo:OWNER/REPO:environment:prod",
            ],
        }
    }
    assert (
        workflow("deploy.yml")["jobs"]["prod"]["environment"] == "prod"
    )  # the subject the prod job presents


def test_the_deploy_roles_policy_covers_every_service_of_the_stack_without_wildcards():
    from tests.template.expanded import expanded

    _, permissions = readme_policies()
    actions = [action for s in permissions["Statement"] for action in listed(s["Action"])]
    granted = {action.split(":")[0] for action in actions}
    types = {item["Type"] for item in expanded()["Resources"].values()}
    needed = {SERVICES["::".join(kind.split("::")[:2])] for kind in types}
    assert needed | {"cloudformation", "s3"} == granted
    assert all("*" not in action for action in actions)
    for statement in permissions["Statement"]:
        assert statement["Effect"] == "Allow" and not {"NotAction", "NotResource"} & set(statement)
        for target in listed(statement["Resource"]):
            assert target != "*", statement["Sid"]
            named = "dify-relay-" in target or "aws-sam-cli-managed-default" in target  # the SAM CLI's bucket
            assert named or statement["Sid"] in WIDER_RESOURCES, (statement["Sid"], target)


# Statements whose resources cannot carry the stacks' names, each for a reason the README gives.
WIDER_RESOURCES = {"SamTransform", "Api", "FindLogGroups", "WebAcl", "RolloutConfigs"}


def listed(value) -> list:
    return value if isinstance(value, list) else [value]


def test_the_readme_names_the_variables_the_workflows_read():
    readme = (ROOT / "README.md").read_text()
    used = set(re.findall(r"vars\.([A-Z_]+)", (WORKFLOWS / "deploy.yml").read_text()))
    assert used == {"AWS_DEPLOY_ROLE_ARN", "AWS_REGION", "DEV_SMOKE_ORIGIN", "PROD_SMOKE_ORIGIN"}
    for variable in used:
        assert f"`{variable}`" in readme, variable
