"""An incremental Server-Sent Events parser: bytes in as they arrive, whole events out.

Handles events and multi-byte UTF-8 characters split across reads, CR, LF and CRLF line ends, and `event:`
lines without data. Each byte is examined a bounded number of times: cost is linear in the stream's length.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Event:
    name: str  # "message" when the stream names none
    data: str


class SSEParser:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial: list[str] = []  # the current line, in pieces, until its line end arrives
        self._skip_lf = False  # the previous piece ended with CR: a leading LF completes that CRLF
        self._name = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        return self._lines(self._decoder.decode(chunk))

    def close(self) -> list[Event]:
        """Ends the stream. An event not closed by a blank line is incomplete and dropped (SSE spec)."""
        events = self._lines(self._decoder.decode(b"", final=True))
        self._partial, self._name, self._data = [], "", []
        return events

    def _lines(self, text: str) -> list[Event]:
        if self._skip_lf and text:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        events: list[Event] = []
        start = 0
        for end in _LINE_END.finditer(text):
            self._partial.append(text[start : end.start()])
            line = "".join(self._partial)
            self._partial = []
            events.extend(self._line(line))
            start = end.end()
        if start < len(text):
            self._partial.append(text[start:])
        elif text.endswith("\r"):
            self._skip_lf = True
        return events

    def _line(self, line: str) -> tuple[Event, ...]:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return ()
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._name = value
        return ()

    def _dispatch(self) -> tuple[Event, ...]:
        name, data = self._name, self._data
        self._name, self._data = "", []
        return (Event(name or "message", "\n".join(data)),) if name or data else ()


def parse(chunks: Iterable[bytes]) -> Iterator[Event]:
    """Events of a whole stream, parsed as its chunks arrive."""
    parser = SSEParser()
    for chunk in chunks:
        yield from parser.feed(chunk)
    yield from parser.close()


KEEP_ALIVE = b": ping\n\n"


def encode(name: str, data: str | None) -> bytes:
    """One event as written to the widget; no data is a comment that only keeps the connection open."""
    if data is None:
        return KEEP_ALIVE
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {name}\n{lines}\n".encode()
