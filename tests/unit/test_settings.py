import pytest

from relay.settings import ConfigurationError, Settings

BASE = {"DIFY_API_KEY_SECRET": "arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf"}


def test_defaults_fit_dify_cloud():
    settings = Settings.from_env(BASE)
    assert settings.default_app.dify_api_url == "https://api.dify.ai/v1"
    assert settings.default_app.dify_app_mode == "auto"
    assert settings.max_message_chars == 4000
    assert settings.default_app.allowed_origins == ()
    assert settings.sessions_table is None
    assert (
        settings.default_app.upstream_mode,
        settings.default_app.query_input,
        settings.default_app.answer_output,
    ) == (
        "auto",
        "query",
        "answer",
    )
    assert settings.default_app.dify_inputs == {} and settings.default_app.allowed_inputs == frozenset()
    assert (settings.gateway_timeout_ms, settings.deadline_margin_ms) == (29_000, 1_500)
    assert settings.require_origin is False and settings.max_body_bytes == 32_768
    assert settings.default_app.rate_budgets.session_per_minute == 20
    assert settings.stream_max_seconds == 300


def test_values_are_read_and_normalised():
    settings = Settings.from_env(
        BASE
        | {
            "DIFY_API_URL": "http://dify.internal/v1/",
            "DIFY_APP_MODE": "Chatflow",
            "ALLOWED_ORIGINS": " https://a.example , https://b.example/ ,",
            "MAX_MESSAGE_CHARS": "1000",
            "SESSIONS_TABLE": "sessions",
            "UPSTREAM_MODE": "Streaming",
            "DIFY_INPUTS": '{"topic": "billing"}',
            "ALLOWED_INPUTS": "lang, topic,",
        }
    )
    assert settings.default_app.upstream_mode == "streaming"
    assert settings.default_app.dify_inputs == {"topic": "billing"}
    assert settings.default_app.allowed_inputs == {"lang", "topic"}
    assert settings.default_app.dify_api_url == "http://dify.internal/v1"
    assert settings.default_app.dify_app_mode == "chatflow"
    assert settings.default_app.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.max_message_chars == 1000
    assert settings.sessions_table == "sessions"


def test_the_secret_wins_over_a_local_key():
    settings = Settings.from_env(BASE | {"DIFY_API_KEY": "app-local"})
    assert settings.default_app.key is None
    assert settings.default_app.key_secret == BASE["DIFY_API_KEY_SECRET"]


@pytest.mark.parametrize(
    "env",
    [
        {},
        BASE | {"DIFY_APP_MODE": "agent-chat"},
        BASE | {"MAX_MESSAGE_CHARS": "many"},
        BASE | {"MAX_MESSAGE_CHARS": "0"},
        BASE | {"SESSION_TTL_SECONDS": "60"},
        BASE | {"UPSTREAM_MODE": "sometimes"},
        BASE | {"REQUIRE_ORIGIN": "yes"},
        BASE | {"RATE_LIMIT_IP_PER_MINUTE": "-1"},
        BASE | {"DIFY_INPUTS": "[1, 2]"},
        BASE | {"DIFY_INPUTS": "{topic: billing}"},
        BASE | {"STREAM_MAX_SECONDS": "901"},
        BASE | {"MAX_UPLOAD_BYTES": "6000000"},
        BASE | {"WIDGET_BRANDING": "[]"},
        BASE | {"WIDGET_BRANDING": '{"colour": "red"}'},
        BASE | {"WIDGET_BRANDING": '{"color": 12}'},
        BASE | {"APPS": "[]"},
        BASE | {"APPS": '{"sales": {}}', "APP_REGISTRY_PATH": "/dify-relay/s/apps"},
        BASE | {"APP_REGISTRY_PATH": "dify-relay/s/apps"},
        BASE | {"REGISTRY_CACHE_SECONDS": "-1"},
    ],
)
def test_unworkable_configuration_is_refused_with_a_reason(env):
    with pytest.raises(ConfigurationError, match=r"\w+"):
        Settings.from_env(env)


def test_widget_branding_names_the_field_it_does_not_know():
    with pytest.raises(ConfigurationError, match="'colour', which is not one of title, color"):
        Settings.from_env(BASE | {"WIDGET_BRANDING": '{"colour": "red"}'})
    branding = '{"title": "Ask Ada", "color": "#c81e5a"}'
    assert Settings.from_env(BASE | {"WIDGET_BRANDING": branding}).default_app.widget_branding == {
        "title": "Ask Ada",
        "color": "#c81e5a",
    }
