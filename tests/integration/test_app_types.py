"""Every Dify app type answers through the same widget API, streamed or blocking as Dify allows."""

import json

import pytest

from local.dify_simulator import App, Fault
from tests.conftest import DIFY_KEY

CHAT_LIKE = [("chat", "chat"), ("advanced-chat", "chatflow"), ("agent-chat", "agent"), ("agent", "agent")]


def generation_calls(simulator):
    return [r for r in simulator.requests if r.method == "POST" and not r.path.endswith("/stop")]


@pytest.fixture
def app_relay(make_relay, simulator):
    def build(app: App, **env):
        simulator.apps[DIFY_KEY] = app
        return make_relay(**env)

    return build


@pytest.mark.parametrize(("dify_mode", "configured"), CHAT_LIKE)
@pytest.mark.parametrize("upstream", ["auto", "blocking", "streaming"])
def test_chat_apps_answer_and_continue_the_conversation(
    app_relay, simulator, dify_mode, configured, upstream
):
    relay = app_relay(App(mode=dify_mode), DIFY_APP_MODE=configured, UPSTREAM_MODE=upstream)
    first = relay.chat({"message": "Hello agent"})
    assert first.status == 200, first.raw_body
    assert (
        first.json["answer"] == "Turn 1: you said 'Hello agent'"
    )  # New Agent's closing message not appended
    assert first.json["mode"] == configured
    second = relay.chat({"message": "More", "sessionId": first.json["sessionId"]}).json
    assert second["answer"] == "Turn 2: you said 'More'"
    assert second["conversationId"] == first.json["conversationId"]
    agent = dify_mode in ("agent-chat", "agent")
    expected = "streaming" if agent or upstream == "streaming" else "blocking"
    assert {call.body["response_mode"] for call in generation_calls(simulator)} == {expected}


@pytest.mark.parametrize("upstream", ["blocking", "streaming"])
def test_chatflow_with_a_required_input_gets_it_on_every_turn(app_relay, simulator, upstream):
    relay = app_relay(
        App(mode="advanced-chat", required_inputs=("topic",)),
        DIFY_APP_MODE="chatflow",
        UPSTREAM_MODE=upstream,
        DIFY_INPUTS='{"topic": "billing"}',
    )
    first = relay.chat({"message": "Hi"}).json
    second = relay.chat({"message": "Next", "sessionId": first["sessionId"]})
    assert second.status == 200
    assert second.json["answer"] == "Turn 2: you said 'Next' [inputs: topic=billing]"
    assert [call.body["inputs"] for call in generation_calls(simulator)] == [{"topic": "billing"}] * 2


@pytest.mark.parametrize("release", ["current", "legacy"])  # checked on every turn, or kept from the first
def test_a_chat_app_with_a_required_input_gets_it_on_every_turn(app_relay, simulator, release):
    relay = app_relay(
        App(mode="chat", required_inputs=("topic",), release=release),
        DIFY_APP_MODE="chat",
        DIFY_INPUTS='{"topic": "billing"}',
    )
    first = relay.chat({"message": "Hi"}).json
    second = relay.chat({"message": "Next", "sessionId": first["sessionId"]})
    assert second.status == 200
    assert second.json["answer"] == "Turn 2: you said 'Next' [inputs: topic=billing]"
    assert [call.body["inputs"] for call in generation_calls(simulator)] == [{"topic": "billing"}] * 2


def test_a_required_input_left_unset_is_a_configuration_error(app_relay):
    reply = app_relay(App(mode="advanced-chat", required_inputs=("topic",)), DIFY_APP_MODE="chatflow").chat(
        {"message": "Hi"}
    )
    assert (reply.status, reply.error_code, reply.json["error"]["retryable"]) == (
        502,
        "upstream_rejected",
        False,
    )


@pytest.mark.parametrize("upstream", ["blocking", "streaming"])
def test_completion_apps_read_the_text_from_their_query_input(app_relay, simulator, upstream):
    relay = app_relay(
        App(mode="completion", query_input="question"),
        DIFY_APP_MODE="completion",
        UPSTREAM_MODE=upstream,
        QUERY_INPUT="question",
    )
    first = relay.chat({"message": "Write a haiku"})
    assert first.status == 200
    assert first.json["answer"] == "Turn 1: you said 'Write a haiku' [inputs: question=Write a haiku]"
    assert first.json["conversationId"] is None
    second = relay.chat({"message": "Another", "sessionId": first.json["sessionId"]}).json
    assert second["answer"].startswith("Turn 1:")  # completion apps have no conversation
    sent = generation_calls(simulator)[0]
    assert sent.path.endswith("/completion-messages")
    assert sent.body["inputs"] == {"question": "Write a haiku"} and sent.body["query"] == "Write a haiku"
    assert "conversation_id" not in sent.body


@pytest.mark.parametrize("upstream", ["blocking", "streaming"])
@pytest.mark.parametrize("answer_output", ["answer", "result"])
def test_workflow_apps_answer_from_their_output(app_relay, simulator, upstream, answer_output):
    relay = app_relay(
        App(mode="workflow", answer_output=answer_output), DIFY_APP_MODE="workflow", UPSTREAM_MODE=upstream
    )
    reply = relay.chat({"message": "Summarise"})
    assert reply.status == 200, reply.raw_body
    assert reply.json["answer"] == "Turn 1: you said 'Summarise' [inputs: query=Summarise]"
    assert reply.json["conversationId"] is None and reply.json["mode"] == "workflow"
    assert generation_calls(simulator)[0].path.endswith("/workflows/run")


@pytest.mark.parametrize("upstream", ["blocking", "streaming"])
def test_a_failed_workflow_run_is_an_error_not_an_answer(app_relay, upstream):
    relay = app_relay(
        App(mode="workflow", fail_workflow=True), DIFY_APP_MODE="workflow", UPSTREAM_MODE=upstream
    )
    reply = relay.chat({"message": "Summarise"})
    assert (reply.status, reply.error_code) == (502, "upstream_error")


@pytest.mark.parametrize(
    ("dify_mode", "configured"), [*CHAT_LIKE, ("completion", "completion"), ("workflow", "workflow")]
)
def test_auto_mode_asks_dify_once_and_routes_by_its_answer(app_relay, simulator, dify_mode, configured):
    relay = app_relay(App(mode=dify_mode), DIFY_APP_MODE="auto")
    first = relay.chat({"message": "Hi"})
    relay.chat({"message": "Again", "sessionId": first.json["sessionId"]})
    assert first.status == 200 and first.json["mode"] == configured
    assert [r.path for r in simulator.requests].count("/v1/info") == 1


def test_a_failed_mode_lookup_is_reported_and_tried_again_later(app_relay, simulator):
    relay = app_relay(App(mode="chat"), DIFY_APP_MODE="auto")
    simulator.inject(Fault(kind="error", status=401, code="unauthorized", path_contains="/info"), times=2)
    assert relay.chat({"message": "Hi"}).error_code == "upstream_rejected"
    assert relay.chat({"message": "Hi"}).status == 200


def test_moderation_replaces_the_streamed_answer(app_relay):
    relay = app_relay(
        App(mode="agent-chat", moderated_replacement="[removed by moderation]"), DIFY_APP_MODE="agent"
    )
    assert relay.chat({"message": "Hi"}).json["answer"] == "[removed by moderation]"


def test_sources_and_usage_come_back_without_dify_metadata(app_relay):
    source = {
        "position": 1,
        "dataset_id": "d1",
        "dataset_name": "Help center",
        "document_id": "doc1",
        "document_name": "refunds.md",
        "segment_id": "s1",
        "score": 0.91,
        "content": "Refunds are issued within 14 days. " * 20,
    }
    relay = app_relay(App(mode="chat", sources=[source]), DIFY_APP_MODE="chat")
    body = relay.chat({"message": "Refunds?"}).json
    [shown] = body["sources"]
    assert shown["title"] == "refunds.md"
    assert source["content"].startswith(shown["snippet"]) and len(shown["snippet"]) == 300
    assert set(body["usage"]) == {"promptTokens", "completionTokens", "totalTokens"}
    assert "dataset_id" not in json.dumps(body) and "price" not in json.dumps(body)


def test_allowed_widget_inputs_reach_dify_over_server_defaults(app_relay, simulator):
    relay = app_relay(
        App(mode="advanced-chat", required_inputs=("topic",), optional_inputs=("lang",)),
        DIFY_APP_MODE="chatflow",
        DIFY_INPUTS='{"topic": "billing", "lang": "en"}',
        ALLOWED_INPUTS="lang",
    )
    reply = relay.chat({"message": "Hi", "inputs": {"lang": "de"}})
    assert reply.json["answer"].endswith("[inputs: lang=de, topic=billing]")
    refused = relay.chat({"message": "Hi", "inputs": {"topic": "secrets"}})
    assert (refused.status, refused.error_code) == (400, "invalid_request")
    assert "inputs.topic" in refused.json["error"]["message"]
    assert len(generation_calls(simulator)) == 1


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="error_event"),
        Fault(kind="stream_cut"),
        Fault(kind="truncated_json"),
        Fault(kind="empty_answer"),
    ],
    ids=lambda f: f.kind,
)
@pytest.mark.parametrize("dify_mode", ["agent-chat", "advanced-chat", "workflow"])
def test_a_broken_stream_is_an_error_never_half_an_answer(app_relay, simulator, fault, dify_mode):
    relay = app_relay(App(mode=dify_mode, ping_every=1), UPSTREAM_MODE="streaming", DIFY_APP_MODE="auto")
    assert relay.chat({"message": "warm up"}).status == 200
    simulator.inject(fault)
    reply = relay.chat({"message": "Hello"})
    assert (reply.status, reply.error_code, reply.json["error"]["retryable"]) == (502, "upstream_error", True)
