"""`make app`: a site owner registers an app with one command, and the running relay serves it."""

from __future__ import annotations

import json

import boto3

from local.apigw import rest_event
from local.dify_simulator import App
from tests.conftest import DIFY_KEY
from tools.add_app import main as add_app

SALES_KEY = "app-sales-feedc0ffee"
ORIGIN = "https://sales.example.com"


def deployed(stack: str, outputs: tuple[str, ...] = ("AppRegistryPath", "AppSecretPrefix")) -> None:
    """A stack with the outputs template.yaml gives it (moto's CloudFormation, one placeholder resource)."""
    values = {"AppRegistryPath": f"/dify-relay/{stack}/apps", "AppSecretPrefix": f"dify-relay/{stack}/apps/"}
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {name: {"Value": values[name]} for name in outputs},
    }
    boto3.client("cloudformation").create_stack(StackName=stack, TemplateBody=json.dumps(template))


def stored_for(*stacks: str) -> list[str]:
    """Parameters and secrets `make app` would have written for these stacks."""
    names = [p["Name"] for p in boto3.client("ssm").describe_parameters()["Parameters"]]
    names += [s["Name"] for s in boto3.client("secretsmanager").list_secrets()["SecretList"]]
    return [name for name in names if any(f"dify-relay/{stack}/" in name for stack in stacks)]


def test_an_app_added_with_one_command_is_served_without_a_redeploy(
    aws, dify_server, make_relay, tmp_path, monkeypatch
):
    dify_server.reset({DIFY_KEY: App(mode="chat"), SALES_KEY: App(mode="agent-chat")})
    relay = make_relay(
        APP_REGISTRY_PATH="/dify-relay/shop/apps",
        APP_SECRET_PREFIX="dify-relay/shop/apps/",
        REGISTRY_CACHE_SECONDS="0",
    )
    entry = tmp_path / "sales.json"
    entry.write_text(
        json.dumps({"difyApiUrl": dify_server.url, "appMode": "agent", "allowedOrigins": [ORIGIN]})
    )
    monkeypatch.setenv("DIFY_APP_KEY", SALES_KEY)
    deployed("shop")
    assert add_app(["sales", str(entry), "--stack", "shop"]) == 0

    stored = boto3.client("secretsmanager").get_secret_value(SecretId="dify-relay/shop/apps/sales")
    assert stored["SecretString"] == SALES_KEY
    event = rest_event(
        "POST", "/v1/apps/sales/chat", headers={"Origin": ORIGIN}, body=json.dumps({"message": "Which plan?"})
    )
    answer = relay.invoke(event)
    assert answer.status == 200 and answer.json["mode"] == "agent"


def test_a_bad_entry_is_refused_before_anything_is_stored(aws, tmp_path, capfd):
    deployed("shop")
    entry = tmp_path / "sales.json"
    for text, message in (
        (json.dumps({"appMode": "agent-chat"}), "appMode must be one of auto, chat"),
        (json.dumps({"key": "app-inline"}), "key is not accepted here"),
        ("{not json", "not a readable JSON file"),
        ("[]", "must hold a JSON object"),
    ):
        entry.write_text(text)
        assert add_app(["sales", str(entry), "--stack", "shop"], ask_key=lambda prompt: "app-x") == 2
        assert message in capfd.readouterr().err
    assert stored_for("shop") == []


def test_make_app_writes_to_samconfigs_default_stack_unless_told(aws, tmp_path, monkeypatch):
    entry = tmp_path / "sales.json"
    entry.write_text(json.dumps({"allowedOrigins": [ORIGIN]}))
    monkeypatch.setenv("DIFY_APP_KEY", SALES_KEY)
    deployed("dify-relay-dev")  # samconfig.toml's default environment
    assert add_app(["sales", str(entry)]) == 0
    [parameter] = boto3.client("ssm").get_parameters_by_path(Path="/dify-relay/dify-relay-dev/apps")[
        "Parameters"
    ]
    assert json.loads(parameter["Value"])["keySecret"] == "dify-relay/dify-relay-dev/apps/sales"


def test_a_stack_not_deployed_or_without_the_registry_is_refused_before_anything_is_stored(
    aws, tmp_path, capfd
):
    entry = tmp_path / "sales.json"
    entry.write_text(json.dumps({"allowedOrigins": [ORIGIN]}))
    ask = lambda prompt: SALES_KEY  # noqa: E731
    assert add_app(["sales", str(entry), "--stack", "shop"], ask_key=ask) == 2
    assert "no stack 'shop'" in capfd.readouterr().err
    deployed("older", outputs=())
    assert add_app(["sales", str(entry), "--stack", "older"], ask_key=ask) == 2
    assert "has no app registry yet" in capfd.readouterr().err
    assert stored_for("shop", "older") == []
