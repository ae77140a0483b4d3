import pytest

from relay.origins import OriginPolicy

POLICY = OriginPolicy(("https://www.example.com", "https://*.shop.example", "http://localhost:8080"))


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://www.example.com", True),
        ("HTTPS://WWW.EXAMPLE.COM", True),
        ("https://www.example.com/", True),
        ("https://example.com", False),
        ("http://www.example.com", False),
        ("https://www.example.com:8443", False),
        ("https://www.example.com.evil.test", False),
        ("https://a.shop.example", True),
        ("https://deep.a.shop.example", True),
        ("https://shop.example", False),
        ("https://evilshop.example", False),
        ("https://a.shop.example.evil.test", False),
        ("http://a.shop.example", False),
        ("https://a.shop.example:444", False),
        ("http://localhost:8080", True),
        ("http://localhost:8081", False),
        ("null", False),
    ],
)
def test_allow_list_with_wildcard_subdomains(origin, allowed):
    assert POLICY.allows(origin) is allowed
    assert POLICY.permits(origin) is allowed
    assert bool(POLICY.cors_headers(origin)) is allowed


def test_cors_grant_names_the_origin_and_varies_on_it():
    headers = POLICY.cors_headers("https://a.shop.example")
    assert headers["Access-Control-Allow-Origin"] == "https://a.shop.example"
    assert headers["Vary"] == "Origin"
    assert "Retry-After" in headers["Access-Control-Expose-Headers"]


def test_requests_without_origin_pass_unless_an_origin_is_required():
    assert POLICY.permits(None) is True
    assert OriginPolicy(("https://www.example.com",), require_origin=True).permits(None) is False


def test_star_allows_every_origin_and_an_empty_list_none():
    assert OriginPolicy(("*",)).allows("https://anything.test")
    assert not OriginPolicy(()).allows("https://anything.test")
