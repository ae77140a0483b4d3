import pytest

from relay.apps import (
    DEFAULT_APP,
    AppRegistry,
    ConfigurationError,
    ParameterStoreApps,
    api_route,
    app_id_of,
    default_route,
    parse_app,
    route_path,
)
from relay.errors import RelayError
from relay.limits import Budgets
from relay.settings import Settings

ENTRY = {"keySecret": "dify-relay/s/apps/sales", "allowedOrigins": ["https://shop.example/"]}
DEFAULT = Settings.from_env({"DIFY_API_KEY": "app-local"}).default_app


def test_the_route_comes_from_the_apis_resource_not_a_custom_domains_base_path():
    mapped = {
        "path": "/relay/v1/apps/sales/chat",
        "resource": "/v1/apps/{app}/chat",
        "pathParameters": {"app": "sales"},
    }
    assert route_path(mapped) == "/v1/apps/sales/chat"
    assert (
        route_path({"path": "/relay/v1/chat", "resource": "/v1/chat", "pathParameters": None}) == "/v1/chat"
    )
    assert route_path({"path": "/v1/chat"}) == "/v1/chat"  # an event without its route: the path as it is
    assert api_route("/v1/apps/sales/history") == ("/v1/apps/{app}/history", {"app": "sales"})
    assert api_route("/v1/history") == ("/v1/history", None)


def test_routes_name_their_app():
    assert app_id_of("/v1/chat") is None and default_route("/v1/chat") == "/v1/chat"
    assert app_id_of("/v1/apps/sales/chat/stream") == "sales"
    assert default_route("/v1/apps/sales/chat/stream") == "/v1/chat/stream"


def test_an_entry_gets_defaults_for_what_it_leaves_out_and_the_stacks_budgets():
    app = parse_app("sales", ENTRY, budgets=Budgets(ip_per_day=7))
    assert app.dify_api_url == "https://api.dify.ai/v1" and app.dify_app_mode == "auto"
    assert app.allowed_origins == ("https://shop.example",) and app.key is None
    assert app.rate_budgets == Budgets(ip_per_day=7)
    limited = parse_app("sales", ENTRY | {"budgets": {"sessionPerMinute": 2}}, budgets=Budgets(ip_per_day=7))
    assert (limited.rate_budgets.session_per_minute, limited.rate_budgets.ip_per_day) == (2, 7)
    assert parse_app("sales", '{"keySecret": "k"}').key_secret == "k"  # a parameter's value is JSON text


@pytest.mark.parametrize(
    ("app_id", "entry", "message"),
    [
        ("Sales", ENTRY, "app id 'Sales' must be 1 to 32 lower-case"),
        ("default", ENTRY, "and not 'default'"),
        ("sales", "not json", "its entry must be a JSON object"),
        ("sales", ENTRY | {"colour": "red"}, "'colour' is not a field"),
        ("sales", {}, "keySecret (a Secrets Manager secret) is required"),
        ("sales", ENTRY | {"key": "app-123"}, "key is not accepted here"),
        ("sales", ENTRY | {"appMode": "agent-chat"}, "appMode must be one of auto, chat"),
        ("sales", ENTRY | {"difyApiUrl": "dify.internal"}, "difyApiUrl must be an http(s) URL"),
        (
            "sales",
            ENTRY | {"allowedOrigins": "https://a.example"},
            "allowedOrigins must be a list of strings",
        ),
        ("sales", ENTRY | {"budgets": {"perHour": 3}}, "budgets.perHour is not one of"),
        ("sales", ENTRY | {"budgets": {"ipPerDay": -1}}, "budgets.ipPerDay must be a whole number"),
        ("sales", ENTRY | {"branding": {"colour": "red"}}, "branding has 'colour'"),
        ("sales", ENTRY | {"inputs": []}, "inputs must be a JSON object"),
    ],
)
def test_a_bad_entry_is_refused_naming_the_app_and_the_field(app_id, entry, message):
    with pytest.raises(ConfigurationError) as refused:
        parse_app(app_id, entry)
    assert message in str(refused.value)


def test_a_secret_outside_the_stacks_prefix_is_refused_before_any_call():
    with pytest.raises(ConfigurationError, match="keySecret must be a secret named dify-relay/s/apps/<name>"):
        parse_app("sales", ENTRY | {"keySecret": "prod/other-team"}, secret_prefix="dify-relay/s/apps/")
    assert parse_app("sales", ENTRY, secret_prefix="dify-relay/s/apps/").key_secret == ENTRY["keySecret"]
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:dify-relay/s/apps/sales-AbC123"
    assert (
        parse_app("sales", ENTRY | {"keySecret": arn}, secret_prefix="dify-relay/s/apps/").key_secret == arn
    )
    for outside in (
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/x-AbC123",
        "dify-relay/s/apps/",
    ):
        with pytest.raises(ConfigurationError, match="keySecret must"):
            parse_app("sales", ENTRY | {"keySecret": outside}, secret_prefix="dify-relay/s/apps/")


class Source:
    def __init__(self, entries):
        self.entries, self.reads, self.down = entries, 0, False

    def __call__(self):
        self.reads += 1
        if self.down:
            raise OSError("unreachable")
        return dict(self.entries)


def test_the_registry_is_read_once_per_max_age_and_unknown_apps_cost_no_read():
    now = [0.0]
    source = Source({"sales": ENTRY})
    registry = AppRegistry(DEFAULT, source, max_age=60, clock=lambda: now[0])
    assert registry.app("sales").app_id == "sales" and registry.app(None) is DEFAULT
    # `/v1/apps/default/...` is no second address of the default app.
    for made_up in ("support", "x" * 40, "../etc", DEFAULT_APP):
        with pytest.raises(RelayError) as missing:
            registry.app(made_up)
        assert missing.value.kind.code == "not_found"
    assert source.reads == 1
    source.entries["support"] = ENTRY
    now[0] = 61.0
    assert registry.app("support").app_id == "support" and source.reads == 2


def test_while_the_registry_cannot_be_read_the_apps_read_last_are_served():
    now = [0.0]
    source = Source({"sales": ENTRY})
    registry = AppRegistry(DEFAULT, source, max_age=60, clock=lambda: now[0])
    registry.app("sales")
    source.down, now[0] = True, 61.0
    assert registry.app("sales").app_id == "sales"
    cold = AppRegistry(DEFAULT, source, max_age=60, clock=lambda: now[0])
    with pytest.raises(RelayError) as unavailable:
        cold.app("sales")
    assert unavailable.value.kind.code == "relay_unavailable"
    assert cold.app(None) is DEFAULT  # the default app needs no registry
    # Until the retry is due, every request is refused at once: no call per request to a store that is down.
    reads = source.reads
    for app_id in ("sales", "made-up", "sales"):
        with pytest.raises(RelayError):
            cold.app(app_id)
    assert source.reads == reads
    source.down, now[0] = False, now[0] + AppRegistry.RETRY_SECONDS
    assert cold.app("sales").app_id == "sales" and source.reads == reads + 1


def test_an_entry_nested_past_the_parser_is_refused_alone():
    source = Source({"sales": ENTRY, "deep": "[" * 5000})
    registry = AppRegistry(DEFAULT, source, max_age=60)
    assert registry.app("sales").app_id == "sales"
    with pytest.raises(RelayError) as refused:
        registry.app("deep")
    assert refused.value.kind.code == "upstream_rejected"


def test_parameter_store_entries_are_named_by_the_last_part_of_the_name_across_pages():
    class Ssm:
        def get_parameters_by_path(self, **call):
            assert call["Path"] == "/dify-relay/s/apps" and call["Recursive"] is False
            if "NextToken" not in call:
                return {"Parameters": [{"Name": "/dify-relay/s/apps/sales", "Value": "{}"}], "NextToken": "2"}
            return {"Parameters": [{"Name": "/dify-relay/s/apps/support", "Value": "[]"}]}

    assert ParameterStoreApps("/dify-relay/s/apps/", Ssm)() == {"sales": "{}", "support": "[]"}
