"""The Dify apps one stack serves: each app's settings, checked field by field, and the registry holding them.

The stack's own environment describes the default app (today's routes, `/v1/...`); a registry adds apps served
at `/v1/apps/<app>/...`: a Parameter Store path on AWS (one parameter per app, changed without a redeploy and
kept in the parameter's history) or, locally, a JSON object in `APPS`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from aws_lambda_powertools import Logger

from .errors import ErrorKind, RelayError
from .limits import Budgets

logger = Logger(child=True)

DEFAULT_APP = "default"
APP_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
APP_MODES = ("auto", "chat", "chatflow", "agent", "completion", "workflow")
UPSTREAM_MODES = ("auto", "blocking", "streaming")
# The widget options a deployment may set for every page; a page's own data-* win. Not the consent text: the
# widget needs it before it may ask the relay anything.
BRANDING_OPTIONS = (
    "title",
    "color",
    "textColor",
    "accent",
    "theme",
    "position",
    "launcherLabel",
    "launcherIcon",
    "avatar",
    "greeting",
    "placeholder",
    "font",
)
APPS_PATH = "/v1/apps/"


class ConfigurationError(ValueError):
    """The environment or the registry does not describe a working relay."""


@dataclass(frozen=True)
class AppConfig:
    """What the relay needs to serve one Dify app."""

    app_id: str
    dify_api_url: str
    dify_app_mode: str
    upstream_mode: str
    query_input: str
    answer_output: str
    dify_inputs: dict
    allowed_inputs: frozenset[str]
    allowed_origins: tuple[str, ...]
    key_secret: str | None
    key: str | None
    rate_budgets: Budgets
    widget_branding: dict

    @property
    def is_default(self) -> bool:
        return self.app_id == DEFAULT_APP

    def scope(self) -> dict:
        """What keeps one app's resent messages apart from another's (nothing for the default app, whose
        records predate apps)."""
        return {} if self.is_default else {"app": self.app_id}


def _split(path: str) -> tuple[str | None, str]:
    """`/v1/apps/<app>/<rest>` -> (app, rest); a path of the default app's routes -> (None, path)."""
    if not path.startswith(APPS_PATH):
        return None, path
    app_id, _, rest = path[len(APPS_PATH) :].partition("/")
    return app_id, rest


def app_id_of(path: str) -> str | None:
    """The app a request's path names (`/v1/apps/<app>/...`), or None: the default app's routes."""
    return _split(path)[0]


def api_route(path: str) -> tuple[str, dict[str, str] | None]:
    """The API's route for a path, as API Gateway names it in an event: `resource` and `pathParameters`."""
    app_id, rest = _split(path)
    return (path, None) if app_id is None else (f"{APPS_PATH}{{app}}/{rest}", {"app": app_id})


def route_path(event: dict) -> str:
    """The request's path within the API: its route (`resource`) with the path parameters filled in. `path`
    itself starts with the base path of a custom domain's mapping (/relay/v1/chat); the route never does."""
    resource, parameters = event.get("resource"), event.get("pathParameters") or {}
    if not resource:
        return event.get("path") or ""
    return re.sub(r"\{(\w+)\+?\}", lambda name: parameters.get(name[1], name[0]), resource)


def default_route(path: str) -> str:
    """`/v1/apps/<app>/chat` -> `/v1/chat`: the route as the default app serves it."""
    app_id, rest = _split(path)
    return path if app_id is None else "/v1/" + rest


def branding_of(raw: object, where: str) -> dict:
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where} must be a JSON object")
    for name, value in raw.items():
        if name not in BRANDING_OPTIONS:
            raise ConfigurationError(
                f"{where} has {name!r}, which is not one of {', '.join(BRANDING_OPTIONS)}"
            )
        if not isinstance(value, str) or len(value) > 500:
            raise ConfigurationError(f"{where}.{name} must be a string of at most 500 characters")
    return raw


# A registry entry's fields: JSON name -> what it must be. Everything but the key is optional.
_BUDGET_FIELDS = {
    "sessionPerMinute": "session_per_minute",
    "sessionPerDay": "session_per_day",
    "ipPerMinute": "ip_per_minute",
    "ipPerDay": "ip_per_day",
}
_FIELDS = (
    "difyApiUrl",
    "appMode",
    "upstreamMode",
    "queryInput",
    "answerOutput",
    "inputs",
    "allowedInputs",
    "allowedOrigins",
    "keySecret",
    "key",
    "budgets",
    "branding",
)


def _named_under(secret: str, prefix: str) -> bool:
    """`secret` (a name or an ARN) is one of the secrets named `prefix`<name>."""
    name = secret.split(":secret:", 1)[1] if secret.startswith("arn:") and ":secret:" in secret else secret
    return name.startswith(prefix) and len(name) > len(prefix)


def parse_app(
    app_id: str,
    document: object,
    *,
    budgets: Budgets | None = None,
    secret_prefix: str | None = None,
    allow_inline_key: bool = False,
) -> AppConfig:
    """One registry entry, checked: a ConfigurationError names the app and the bad field.

    `budgets`: what an entry without `budgets` (or without one of its windows) gets. `secret_prefix`: the
    names of secrets the stack may read (its IAM policy): a wrong name fails here, not as a denied
    call. A key inline (`key`) only with `allow_inline_key` (local runs): on AWS keys stay in Secrets Manager.
    """
    if app_id == DEFAULT_APP or not APP_ID.fullmatch(app_id):
        raise ConfigurationError(
            f"app id {app_id!r} must be 1 to 32 lower-case letters, digits or '-' (not starting or ending "
            f"with '-'), and not {DEFAULT_APP!r}"
        )
    where = f"app {app_id!r}"
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            raise ConfigurationError(f"{where}: its entry must be a JSON object") from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"{where}: its entry must be a JSON object")
    unknown = sorted(set(document) - set(_FIELDS))
    if unknown:
        raise ConfigurationError(f"{where}: {unknown[0]!r} is not a field (fields: {', '.join(_FIELDS)})")

    def text(name: str, default: str | None = None) -> str | None:
        value = document.get(name, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"{where}: {name} must be a non-empty string")
        return value.strip()

    def choice(name: str, choices: tuple[str, ...]) -> str:
        value = text(name, choices[0]).lower()
        if value not in choices:
            raise ConfigurationError(f"{where}: {name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def strings(name: str) -> list[str]:
        value = document.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
            raise ConfigurationError(f"{where}: {name} must be a list of strings")
        return [item.strip() for item in value]

    url = text("difyApiUrl", "https://api.dify.ai/v1")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise ConfigurationError(f"{where}: difyApiUrl must be an http(s) URL, got {url!r}")
    inputs = document.get("inputs", {})
    if not isinstance(inputs, dict):
        raise ConfigurationError(f"{where}: inputs must be a JSON object")
    secret, key = text("keySecret"), text("key")
    if key is not None and not allow_inline_key:
        raise ConfigurationError(
            f"{where}: key is not accepted here; keep the key in Secrets Manager (keySecret)"
        )
    if (secret is None) == (key is None):
        raise ConfigurationError(f"{where}: keySecret (a Secrets Manager secret) is required")
    if secret is not None and secret_prefix and not _named_under(secret, secret_prefix):
        raise ConfigurationError(
            f"{where}: keySecret must be a secret named {secret_prefix}<name> (or its ARN), got {secret!r}"
        )
    raw_budgets = document.get("budgets", {})
    if not isinstance(raw_budgets, dict):
        raise ConfigurationError(f"{where}: budgets must be a JSON object")
    windows = {}
    for name, value in raw_budgets.items():
        if name not in _BUDGET_FIELDS:
            raise ConfigurationError(f"{where}: budgets.{name} is not one of {', '.join(_BUDGET_FIELDS)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigurationError(f"{where}: budgets.{name} must be a whole number, at least 0")
        windows[_BUDGET_FIELDS[name]] = value

    return AppConfig(
        app_id=app_id,
        dify_api_url=url.rstrip("/"),
        dify_app_mode=choice("appMode", APP_MODES),
        upstream_mode=choice("upstreamMode", UPSTREAM_MODES),
        query_input=text("queryInput", "query"),
        answer_output=text("answerOutput", "answer"),
        dify_inputs=inputs,
        allowed_inputs=frozenset(strings("allowedInputs")),
        allowed_origins=tuple(origin.rstrip("/") for origin in strings("allowedOrigins")),
        key_secret=secret,
        key=key,
        rate_budgets=replace(budgets or Budgets(), **windows),
        widget_branding=branding_of(document.get("branding", {}), f"{where}: branding"),
    )


class AppRegistry:
    """The default app, and the registered ones as `source()` lists them (app id -> entry), read again
    after `max_age` seconds. An entry that fails its checks is logged with its error and answers as
    unconfigured; the others are served. While the source cannot be read, the apps read last are served."""

    RETRY_SECONDS = 10.0

    def __init__(
        self,
        default: AppConfig,
        source: Callable[[], Mapping[str, object]] | None = None,
        *,
        parse: Callable[[str, object], AppConfig] = parse_app,
        max_age: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default = default
        self._source, self._parse, self._max_age, self._clock = source, parse, max_age, clock
        self._apps: dict[str, AppConfig | ConfigurationError] | None = None
        self._next_read = 0.0

    def app(self, app_id: str | None) -> AppConfig:
        """The app of that id; None: the default app (its own routes; `/v1/apps/default/...` is no app)."""
        if app_id is None:
            return self.default
        found = self._current().get(app_id) if APP_ID.fullmatch(app_id) and app_id != DEFAULT_APP else None
        if found is None:
            raise RelayError(ErrorKind.NOT_FOUND, "No such assistant.")
        if isinstance(found, ConfigurationError):
            raise RelayError(ErrorKind.UPSTREAM_REJECTED, "The assistant is not configured yet.")
        return found

    def _current(self) -> dict[str, AppConfig | ConfigurationError]:
        if self._source is None:
            return {}
        now = self._clock()
        if now < self._next_read:  # read lately, or its first read failed moments ago: no new call yet
            if self._apps is None:
                raise self._unavailable()
            return self._apps
        try:
            entries = self._source()
        except Exception as error:  # the registry's store is down: serve what was read last
            self._next_read = now + min(self.RETRY_SECONDS, self._max_age)
            if self._apps is None:
                logger.error("app registry unreadable", extra={"reason": type(error).__name__})
                raise self._unavailable() from None
            logger.warning(
                "app registry unreadable; serving the apps read last", extra={"reason": str(error)}
            )
            return self._apps
        self._apps = {app_id: self._checked(app_id, entry) for app_id, entry in entries.items()}
        self._next_read = now + self._max_age
        return self._apps

    @staticmethod
    def _unavailable() -> RelayError:
        return RelayError(
            ErrorKind.RELAY_UNAVAILABLE, "The assistant is briefly unavailable. Please try again."
        )

    def _checked(self, app_id: str, entry: object) -> AppConfig | ConfigurationError:
        try:
            return self._parse(app_id, entry)
        except ConfigurationError as error:
            logger.error("app registry entry refused", extra={"app": app_id, "reason": str(error)})
            return error


class ParameterStoreApps:
    """The registry's entries: the String parameters directly under `path`, named by app id."""

    def __init__(self, path: str, client_factory: Callable[[], object]) -> None:
        self._path = path.rstrip("/")
        self._client_factory = client_factory

    def __call__(self) -> dict[str, str]:
        client = self._client_factory()
        entries, token = {}, None
        while True:
            page = client.get_parameters_by_path(
                Path=self._path, Recursive=False, **({"NextToken": token} if token else {})
            )
            for parameter in page.get("Parameters", ()):
                entries[parameter["Name"].rpartition("/")[2]] = parameter["Value"]
            token = page.get("NextToken")
            if not token:
                return entries
