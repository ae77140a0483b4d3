"""Which website origins may call the relay: exact origins, `*`, and wildcard subdomains."""

from __future__ import annotations


def _split(origin: str) -> tuple[str, str, str]:
    """scheme, host, port (port may be empty)."""
    scheme, _, rest = origin.partition("://")
    host, _, port = rest.partition(":")
    return scheme.lower(), host.lower(), port


# What a browser may send and read: Content-Type and Idempotency-Key from the widget, beside the AWS headers
# API Gateway clients use; Retry-After on refusals.
ALLOW_HEADERS = ",".join(
    sorted(
        {
            "Authorization",
            "Content-Type",
            "X-Amz-Date",
            "X-Api-Key",
            "X-Amz-Security-Token",
            "Idempotency-Key",
        }
    )
)
CORS_MAX_AGE = 600


class OriginPolicy:
    """The allow-list, enforced by the relay itself and used for its CORS grants (both functions; the JSON
    function's resolver reads it through app.py's CORSConfig, so the streaming function imports no resolver).

    `https://*.example.com` allows any subdomain of example.com, at any depth, over https on the default port;
    it does not allow `https://example.com` itself (list that too if wanted).
    """

    def __init__(self, allowed: tuple[str, ...], *, require_origin: bool = False) -> None:
        self.require_origin = require_origin
        self._any = "*" in allowed
        self._exact = {origin.lower() for origin in allowed if "*" not in origin}
        # https://*.example.com → ("https", ".example.com", ""): a host ends with the suffix and is longer.
        self._wildcards = [
            (scheme, host[1:], port)
            for scheme, host, port in map(_split, allowed)
            if host.startswith("*.") and "*" not in host[1:]
        ]

    def allows(self, origin: str) -> bool:
        origin = origin.rstrip("/").lower()
        if self._any or origin in self._exact:
            return True
        scheme, host, port = _split(origin)
        return any(
            (scheme, port) == (w_scheme, w_port) and host.endswith(suffix) and len(host) > len(suffix)
            for w_scheme, suffix, w_port in self._wildcards
        )

    def permits(self, origin: str | None) -> bool:
        """Whether a request may be served: browsers send Origin; other callers only when not required."""
        return self.allows(origin) if origin else not self.require_origin

    def cors_headers(self, origin: str | None) -> dict[str, str]:
        """The CORS grant for a request from `origin`: none unless the origin is allowed."""
        if not origin or not self.allows(origin):
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Expose-Headers": "Retry-After",
            "Access-Control-Max-Age": str(CORS_MAX_AGE),
            "Vary": "Origin",
        }
