"""What the relay sends Dify for a turn, and how Dify's blocking answers and streams become one Answer."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from .protocol import (
    Answer,
    Delta,
    Part,
    Ping,
    Question,
    Replaced,
    Route,
    Started,
    is_uuid,
    sources_of,
    text_or_none,
    usage_of,
)
from .refusals import ConversationNotFound, failed_run, malformed, misconfigured, upstream_error

logger = Logger(child=True)
PING = Ping()


class Shapes:
    """A turn's request body and its answer's reading, for the app's inputs and outputs as configured."""

    def __init__(self, *, query_input: str = "query", answer_output: str = "answer") -> None:
        self._query_input = query_input
        self._answer_output = answer_output

    def payload(self, route: Route, question: Question, streaming: bool) -> dict:
        inputs = dict(question.inputs)
        payload = {"user": question.user, "response_mode": "streaming" if streaming else "blocking"}
        if route.has_conversations:
            payload["query"] = question.query
            if question.conversation_id:
                if not is_uuid(question.conversation_id):
                    raise ConversationNotFound()
                payload["conversation_id"] = question.conversation_id
        else:
            inputs[self._query_input] = question.query
            if route is Route.COMPLETION:
                payload["query"] = question.query  # the legacy field older completion apps read
        payload["inputs"] = inputs
        if question.image_ids:
            payload["files"] = [
                {"type": "image", "transfer_method": "local_file", "upload_file_id": file_id}
                for file_id in question.image_ids
            ]
        return payload

    def blocking_answer(self, route: Route, mode: str, data: dict) -> Answer:
        if route is Route.WORKFLOW:
            run = data.get("data")
            if not isinstance(run, dict):
                raise malformed()
            return self.workflow_answer(run, mode, data.get("task_id"))
        metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        return checked(
            Answer(
                text=data.get("answer"),
                conversation_id=text_or_none(data.get("conversation_id")),
                message_id=text_or_none(data.get("message_id") or data.get("id")),
                mode=mode,
                usage=usage_of(metadata),
                sources=sources_of(metadata),
                task_id=text_or_none(data.get("task_id")),
            )
        )

    def workflow_answer(self, run: dict, mode: str, task_id) -> Answer:
        if run.get("status") != "succeeded":
            raise failed_run(run)
        tokens = run.get("total_tokens")
        return checked(
            Answer(
                text=self._pick_output(run.get("outputs")),
                conversation_id=None,
                message_id=None,
                mode=mode,
                usage={"totalTokens": tokens} if isinstance(tokens, int) else None,
                task_id=text_or_none(task_id),
            )
        )

    def _pick_output(self, outputs) -> str:
        """The workflow output named ANSWER_OUTPUT, else the only text output."""
        if not isinstance(outputs, dict):
            raise malformed()
        if isinstance(outputs.get(self._answer_output), str):
            return outputs[self._answer_output]
        texts = [value for value in outputs.values() if isinstance(value, str)]
        if len(texts) == 1:
            return texts[0]
        raise misconfigured(
            "the workflow has no text output named by ANSWER_OUTPUT",
            answer_output=self._answer_output,
            workflow_outputs=sorted(outputs),
        )


class Assembly:
    """Builds one answer from a stream's events, by Dify's rules for each app type."""

    def __init__(self, route: Route, mode: str, shapes: Shapes) -> None:
        self._route = route
        self._mode = mode
        self._shapes = shapes
        self._parts: list[str] = []
        self._agent_deltas = False
        self._ended = False
        self._answer: Answer | None = None
        self._ids: dict[str, str | None] = {"conversation_id": None, "message_id": None, "task_id": None}
        self._metadata: dict = {}

    def add(self, event: dict) -> Part | None:
        """Takes one event of the stream; returns what it changes of the answer as the visitor sees it."""
        kind = event.get("event")
        if kind == "ping":
            return PING
        for name in self._ids:
            self._ids[name] = self._ids[name] or text_or_none(event.get(name))
        if kind == "error":
            status = event.get("status")
            status = status if isinstance(status, int) and status >= 400 else 500
            logger.warning("Dify stream error", extra={"dify_status": status, "dify_code": event.get("code")})
            raise upstream_error(status, event, {})
        if kind in ("agent_message", "message", "text_chunk"):
            text = _delta(
                (event.get("data") or {}).get("text") if kind == "text_chunk" else event.get("answer")
            )
            # New Agent closes its agent_message deltas with one message holding the complete answer.
            if kind == "message" and self._agent_deltas:
                return self._replace(text)
            self._agent_deltas = self._agent_deltas or kind == "agent_message"
            self._parts.append(text)
            return Delta(text) if text else None
        if kind == "message_replace":
            return self._replace(_delta(event.get("answer")), always=True)
        if kind == "message_end":
            self._ended = True
            self._metadata = event.get("metadata") if isinstance(event.get("metadata"), dict) else {}
        elif kind == "workflow_finished":
            run = event.get("data") if isinstance(event.get("data"), dict) else {}
            if self._route is Route.WORKFLOW:
                self._ended = True
                self._answer = self._shapes.workflow_answer(run, self._mode, self._ids["task_id"])
            # A chatflow's answer ends with message_end, which Dify sends after the workflow's end (older
            # streams before it); a run that did not succeed is an error while its answer is still open.
            elif not self._ended and run.get("status") != "succeeded":
                raise failed_run(run)
        return None

    def _replace(self, text: str, *, always: bool = False) -> Replaced | None:
        unchanged = not always and text == "".join(self._parts)
        self._parts = [text]
        return None if unchanged else Replaced(text)

    @property
    def ids(self) -> Started:
        return Started(
            conversation_id=self._ids["conversation_id"] if self._route.has_conversations else None,
            message_id=self._ids["message_id"],
            task_id=self._ids["task_id"],
        )

    @property
    def task_id(self) -> str | None:
        return self._ids["task_id"]

    def answer(self) -> Answer:
        if not self._ended:
            logger.warning("Dify stream ended without a terminal event")
            raise malformed()
        if self._answer is not None:
            return self._answer
        return checked(
            Answer(
                text="".join(self._parts),
                conversation_id=self._ids["conversation_id"] if self._route.has_conversations else None,
                message_id=self._ids["message_id"],
                mode=self._mode,
                usage=usage_of(self._metadata),
                sources=sources_of(self._metadata),
                task_id=self._ids["task_id"],
            )
        )


def checked(answer: Answer) -> Answer:
    if not isinstance(answer.text, str) or not answer.text.strip():
        logger.warning("Dify sent no answer text")
        raise malformed()
    return answer


def _delta(value) -> str:
    if not isinstance(value, str):
        raise malformed()
    return value
