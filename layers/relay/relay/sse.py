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
        if "\r" in text:
            lines = []
            start = 0
            for end in _LINE_END.finditer(text):
                lines.append(text[start : end.start()])
                start = end.end()
            tail = text[start:]
            self._skip_lf = not tail and text.endswith("\r")
        else:  # LF only, as most servers write: one split instead of a match per line
            lines = text.split("\n")
            tail = lines.pop()
        events: list[Event] = []
        if lines:
            if self._partial:
                self._partial.append(lines[0])
                lines[0] = "".join(self._partial)
                self._partial = []
            for line in lines:
                event = self._line(line)
                if event is not None:
                    events.append(event)
        if tail:
            self._partial.append(tail)
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        field, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._name = value
        return None

    def _dispatch(self) -> Event | None:
        name, data = self._name, self._data
        if not name and not data:
            return None
        self._name, self._data = "", []
        return Event(name or "message", "\n".join(data))


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
