import pytest

from relay.errors import ErrorKind, RelayError
from relay.keys import PLACEHOLDER, SecretsManagerKeyProvider, parse_secret


@pytest.mark.parametrize(
    ("stored", "key"),
    [
        ("app-abc", "app-abc"),
        ("  app-abc\n", "app-abc"),
        (b"app-abc", "app-abc"),
        ('{"apiKey": "app-json"}', "app-json"),
        ('{"apiKey": "  app-json "}', "app-json"),
        ('{"other": "x"}', None),
        ('{"apiKey": ', None),
        ("[]", "[]"),
        ("", None),
        (None, None),
        (PLACEHOLDER, None),
    ],
)
def test_secret_holds_a_bare_key_or_json(stored, key):
    assert parse_secret(stored) == key


class FakeSecretsClient:
    def __init__(self, values):
        self.values = list(values)
        self.calls = 0

    def get_secret_value(self, SecretId):
        self.calls += 1
        return {"SecretString": self.values[min(self.calls, len(self.values)) - 1]}


def test_key_is_cached_until_a_refresh_is_asked_for():
    client = FakeSecretsClient(["app-old", "app-new"])
    keys = SecretsManagerKeyProvider("relay/key", max_age=300, client=client)
    assert keys.get() == "app-old"
    assert keys.get() == "app-old"
    assert client.calls == 1
    assert keys.get(refresh=True) == "app-new"
    assert keys.get() == "app-new"
    assert client.calls == 2


def test_an_unfilled_secret_means_not_configured():
    keys = SecretsManagerKeyProvider("relay/key", max_age=300, client=FakeSecretsClient([PLACEHOLDER]))
    with pytest.raises(RelayError) as caught:
        keys.get()
    assert caught.value.kind is ErrorKind.UPSTREAM_REJECTED
    assert PLACEHOLDER not in str(caught.value)
