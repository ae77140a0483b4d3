"""Many Dify apps behind one stack: the default app at /v1/..., registered apps at /v1/apps/<app>/..., each
with its own key, origins, sessions, budgets and resent messages."""

from __future__ import annotations

import json

import boto3
import pytest

from local.apigw import LambdaContext, rest_event
from local.dify_simulator import App
from relay import sse
from tests.conftest import DIFY_KEY
from tests.integration.conftest import ORIGIN

REGISTRY = "/dify-relay/test/apps"
PREFIX = "dify-relay/test/apps/"
SALES_KEY = "app-sales-0123456789abcdef"
SALES_ORIGIN = "https://sales.example.com"


@pytest.fixture
def two_apps(aws, dify_server):
    dify_server.reset({DIFY_KEY: App(mode="chat"), SALES_KEY: App(mode="agent-chat")})
    aws.secrets.create_secret(Name=PREFIX + "sales", SecretString=SALES_KEY)
    ssm = boto3.client("ssm")

    def register(app_id: str, entry: dict | str) -> None:
        value = entry if isinstance(entry, str) else json.dumps(entry)
        ssm.put_parameter(Name=f"{REGISTRY}/{app_id}", Value=value, Type="String", Overwrite=True)

    register(
        "sales",
        {
            "difyApiUrl": dify_server.url,
            "keySecret": PREFIX + "sales",
            "appMode": "agent",
            "allowedOrigins": [SALES_ORIGIN],
            "budgets": {"sessionPerMinute": 3},
            "branding": {"title": "Sales"},
        },
    )
    return register


@pytest.fixture
def relay(make_relay, two_apps):
    return make_relay(APP_REGISTRY_PATH=REGISTRY, APP_SECRET_PREFIX=PREFIX)


def chat(relay, app: str | None, body: dict, *, origin: str, key: str | None = None):
    path = "/v1/chat" if app is None else f"/v1/apps/{app}/chat"
    headers = {"Content-Type": "application/json", "Origin": origin} | (
        {"Idempotency-Key": key} if key else {}
    )
    return relay.invoke(rest_event("POST", path, headers=headers, body=json.dumps(body)))


def test_a_registered_app_answers_with_its_own_key_and_mode_and_the_default_app_is_unchanged(relay):
    sales = chat(relay, "sales", {"message": "Which plan?"}, origin=SALES_ORIGIN)
    assert sales.status == 200, sales.body
    assert sales.json["answer"] == "Turn 1: you said 'Which plan?'" and sales.json["mode"] == "agent"
    default = chat(relay, None, {"message": "Hello"}, origin=ORIGIN)
    assert default.status == 200 and default.json["mode"] == "chat"
    config = relay.request("GET", "/v1/apps/sales/config", origin=SALES_ORIGIN)
    assert config.status == 200 and config.json["branding"] == {"title": "Sales"}


def test_a_registered_apps_openapi_document_describes_its_own_routes(relay, two_apps):
    entry = {"keySecret": PREFIX + "sales", "allowedOrigins": [SALES_ORIGIN], "allowedInputs": ["plan"]}
    two_apps("sales", entry)
    served = relay.request("GET", "/v1/apps/sales/openapi.json", origin=SALES_ORIGIN).json
    default = relay.request("GET", "/v1/openapi.json", origin=ORIGIN).json
    assert set(served["paths"]) == {path.replace("/v1/", "/v1/apps/sales/") for path in default["paths"]}
    inputs = served["components"]["schemas"]["ChatRequest"]["properties"]["inputs"]
    assert inputs["propertyNames"] == {"enum": entry["allowedInputs"]}  # the app's own allow-list
    # Each operation it names is served at that path for the app, not by the default app.
    history = served["paths"]["/v1/apps/sales/history"]["get"]
    assert history["operationId"] == "history"
    answer = relay.request(
        "GET", "/v1/apps/sales/history", query="sessionId=" + "s" * 32, origin=SALES_ORIGIN
    )
    assert answer.status == 200 and answer.json["turns"] == []


def test_an_origin_allowed_for_one_app_is_refused_by_another(relay):
    assert chat(relay, "sales", {"message": "hi"}, origin=ORIGIN).error_code == "origin_not_allowed"
    assert chat(relay, None, {"message": "hi"}, origin=SALES_ORIGIN).error_code == "origin_not_allowed"
    granted = relay.request("OPTIONS", "/v1/apps/sales/chat", origin=SALES_ORIGIN)
    refused = relay.request("OPTIONS", "/v1/apps/sales/chat", origin=ORIGIN)
    assert granted.status == 204 and granted.headers["access-control-allow-origin"] == SALES_ORIGIN
    assert refused.status == 403 and "access-control-allow-origin" not in refused.headers


def test_a_session_of_one_app_is_unknown_to_another(relay):
    first = chat(relay, "sales", {"message": "one"}, origin=SALES_ORIGIN).json
    session = first["sessionId"]
    again = chat(relay, "sales", {"message": "two", "sessionId": session}, origin=SALES_ORIGIN).json
    assert again["answer"].startswith("Turn 2") and again["conversationId"] == first["conversationId"]
    elsewhere = chat(relay, None, {"message": "three", "sessionId": session}, origin=ORIGIN).json
    assert elsewhere["answer"].startswith("Turn 1") and elsewhere["conversationId"] != first["conversationId"]
    history = relay.request("GET", "/v1/history", query=f"sessionId={session}", origin=ORIGIN)
    assert [turn["question"] for turn in history.json["turns"]] == ["three"]
    erased = relay.request("DELETE", "/v1/session", body={"sessionId": session}, origin=ORIGIN)
    assert erased.status == 204
    kept = chat(relay, "sales", {"message": "four", "sessionId": session}, origin=SALES_ORIGIN).json
    assert kept["answer"].startswith("Turn 3")  # erasing it on one app left the other's conversation alone


def test_each_app_spends_its_own_budgets(relay):
    session = chat(relay, "sales", {"message": "1"}, origin=SALES_ORIGIN).json["sessionId"]
    for n in (2, 3):
        assert (
            chat(relay, "sales", {"message": f"{n}", "sessionId": session}, origin=SALES_ORIGIN).status == 200
        )
    limited = chat(relay, "sales", {"message": "4", "sessionId": session}, origin=SALES_ORIGIN)
    assert limited.status == 429 and limited.error_code == "rate_limited"
    # The default app's budget (20 a minute) is its own, for the same visitor address.
    assert all(chat(relay, None, {"message": f"d{n}"}, origin=ORIGIN).status == 200 for n in range(3))


def test_a_resent_message_is_answered_again_only_by_its_own_app(relay, dify_server):
    key = "resend-0001"
    sales = chat(relay, "sales", {"message": "same"}, origin=SALES_ORIGIN, key=key).json
    assert chat(relay, "sales", {"message": "same"}, origin=SALES_ORIGIN, key=key).json == sales
    default = chat(relay, None, {"message": "same"}, origin=ORIGIN, key=key).json
    assert default["mode"] == "chat" and default["conversationId"] != sales["conversationId"]


def test_an_app_the_registry_does_not_have_is_404_and_adding_one_needs_no_redeploy(
    make_relay, two_apps, dify_server
):
    relay = make_relay(APP_REGISTRY_PATH=REGISTRY, APP_SECRET_PREFIX=PREFIX, REGISTRY_CACHE_SECONDS="0")
    missing = chat(relay, "support", {"message": "hi"}, origin=ORIGIN)
    assert missing.status == 404 and missing.error_code == "not_found"
    assert missing.json["error"]["message"] == "No such assistant."
    entry = {"keySecret": PREFIX + "sales", "allowedOrigins": [ORIGIN], "appMode": "lively"}
    two_apps("support", entry)
    # An entry that fails its checks: that app says it is not configured, the others go on.
    broken = chat(relay, "support", {"message": "hi"}, origin=ORIGIN)
    assert broken.status == 502 and broken.error_code == "upstream_rejected"
    assert chat(relay, "sales", {"message": "hi"}, origin=SALES_ORIGIN).status == 200
    two_apps("support", entry | {"appMode": "agent", "difyApiUrl": dify_server.url})
    fixed = chat(relay, "support", {"message": "hi"}, origin=ORIGIN)
    assert fixed.status == 200 and fixed.json["mode"] == "agent"


def test_a_refused_registry_entry_is_logged_with_the_field_it_got_wrong(make_relay, two_apps, relay_log):
    two_apps("support", {"keySecret": "someone-elses/secret", "allowedOrigins": [ORIGIN]})
    relay = make_relay(APP_REGISTRY_PATH=REGISTRY, APP_SECRET_PREFIX=PREFIX)
    assert chat(relay, "support", {"message": "hi"}, origin=ORIGIN).error_code == "upstream_rejected"
    refused = [json.loads(line) for line in relay_log.getvalue().splitlines() if "registry entry" in line]
    assert refused and refused[0]["app"] == "support"
    assert "keySecret must be a secret named dify-relay/test/apps/<name>" in refused[0]["reason"]


def test_metrics_count_each_app_beside_the_stacks_totals(relay, capfd):
    capfd.readouterr()
    assert chat(relay, "sales", {"message": "hi"}, origin=SALES_ORIGIN).status == 200
    chat(relay, "sales", {"message": "hi"}, origin=ORIGIN)  # refused: origin_not_allowed
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    answered = next(line for line in lines if "Answers" in line)
    assert answered["App"] == "sales"
    assert sorted(map(sorted, answered["_aws"]["CloudWatchMetrics"][0]["Dimensions"])) == [
        ["App", "service"],
        ["service"],
    ]
    errors = [line for line in lines if line.get("code") == "origin_not_allowed"]
    assert sorted(str(line.get("App")) for line in errors) == ["None", "sales"]  # the total, and by app


def test_a_registered_app_streams_at_its_own_route_and_refuses_the_other_apps_origin(
    relay_env, two_apps, monkeypatch
):
    import importlib

    monkeypatch.setenv("APP_REGISTRY_PATH", REGISTRY)
    monkeypatch.setenv("APP_SECRET_PREFIX", PREFIX)
    import stream_app

    stream_app = importlib.reload(stream_app)

    def stream(path: str, origin: str, base_path: str = ""):
        headers = {"Content-Type": "application/json", "Origin": origin}
        event = rest_event("POST", path, headers=headers, body=json.dumps({"message": "Which plan?"}))
        event["path"] = base_path + path  # a custom domain's mapping: in `path`, never in the route
        return stream_app.handle(event, LambdaContext(30_000))

    streamed = stream("/v1/apps/sales/chat/stream", SALES_ORIGIN)
    assert streamed.status == 200 and streamed.headers["Access-Control-Allow-Origin"] == SALES_ORIGIN
    events = [(event.name, json.loads(event.data)) for event in sse.parse(streamed.body) if event.data]
    assert events[-1][0] == "end" and events[-1][1]["mode"] == "agent"
    assert events[-1][1]["answer"] == "Turn 1: you said 'Which plan?'"
    refused = stream("/v1/apps/sales/chat/stream", ORIGIN)
    assert refused.status == 403 and "Access-Control-Allow-Origin" not in refused.headers
    missing = stream("/v1/apps/support/chat/stream", ORIGIN)
    assert missing.status == 404 and json.loads(b"".join(missing.body))["error"]["code"] == "not_found"
    mapped = stream("/v1/apps/sales/chat/stream", SALES_ORIGIN, base_path="/relay")
    assert mapped.status == 200 and mapped.headers["Access-Control-Allow-Origin"] == SALES_ORIGIN


def test_behind_a_custom_domains_base_path_each_app_keeps_its_routes(relay):
    for app, origin, mode in ((None, ORIGIN, "chat"), ("sales", SALES_ORIGIN, "agent")):
        route = "/v1/chat" if app is None else f"/v1/apps/{app}/chat"
        headers = {"Content-Type": "application/json", "Origin": origin}
        event = rest_event("POST", route, headers=headers, body=json.dumps({"message": "Hello"}))
        # API Gateway puts the mapping's base path (here "relay") in `path`; `resource` is the API's route.
        event["path"] = event["requestContext"]["path"] = "/relay" + route
        answer = relay.invoke(event)
        assert answer.status == 200 and answer.json["mode"] == mode, answer.body
