"""Everything about Dify's Service API, by reason to change:

- `protocol`: Dify's vocabulary (app modes, routes, question, answer, ids, metadata);
- `refusals`: Dify's error codes and failures, as the widget is told them;
- `transport`: HTTP (the key, deadlines, retries, bodies and event streams);
- `answers`: a turn's request body, and how blocking answers and streams become one answer;
- `client`: the routes the relay calls.
"""

from .client import DifyClient
from .protocol import (
    APP_ROUTES,
    CONFIGURED_MODES,
    RELAY_MODES,
    Answer,
    Delta,
    HistoryPage,
    Part,
    Ping,
    Question,
    Replaced,
    Route,
    Started,
    Upload,
    is_uuid,
    sources_of,
    usage_of,
)
from .refusals import ConversationNotFound, retry_after, upstream_error

__all__ = [
    "APP_ROUTES",
    "CONFIGURED_MODES",
    "RELAY_MODES",
    "Answer",
    "ConversationNotFound",
    "Delta",
    "DifyClient",
    "HistoryPage",
    "Part",
    "Ping",
    "Question",
    "Replaced",
    "Route",
    "Started",
    "Upload",
    "is_uuid",
    "retry_after",
    "sources_of",
    "upstream_error",
    "usage_of",
]
