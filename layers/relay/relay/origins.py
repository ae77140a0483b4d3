"""Which website origins may call the relay: exact origins, `*`, and wildcard subdomains."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import CORSConfig


def _split(origin: str) -> tuple[str, str, str]:
    """scheme, host, port (port may be empty)."""
    scheme, _, rest = origin.partition("://")
    host, _, port = rest.partition(":")
    return scheme.lower(), host.lower(), port


class OriginPolicy(CORSConfig):
    """The allow-list, enforced by the relay itself and used for its CORS grants.

    `https://*.example.com` allows any subdomain of example.com, at any depth, over https on the default port;
    it does not allow `https://example.com` itself (list that too if wanted).
    """

    def __init__(self, allowed: tuple[str, ...], *, require_origin: bool = False) -> None:
        super().__init__(
            allow_origin="*",
            allow_headers=["Content-Type", "Idempotency-Key"],
            expose_headers=["Retry-After"],
            max_age=600,
        )
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

    def allowed_origin(self, extracted_origin: str | None) -> str | None:
        return extracted_origin if extracted_origin and self.allows(extracted_origin) else None

    def to_dict(self, origin: str | None) -> dict[str, str]:
        if not origin or not self.allows(origin):
            return {}
        return super().to_dict(origin) | {"Vary": "Origin"}
