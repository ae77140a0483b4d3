import json

from hypothesis import given
from hypothesis import strategies as st

from relay.sse import Event, SSEParser, parse


def events_of(*chunks: bytes) -> list[Event]:
    return list(parse(chunks))


def test_events_end_at_a_blank_line_and_carry_their_name():
    stream = b'data: {"event": "message"}\n\nevent: ping\n\ndata: tail\n\n'
    assert events_of(stream) == [
        Event("message", '{"event": "message"}'),
        Event("ping", ""),
        Event("message", "tail"),
    ]


def test_an_event_split_anywhere_across_reads_is_whole():
    stream = b'data: {"answer": "split me"}\n\n'
    for cut in range(1, len(stream)):
        assert events_of(stream[:cut], stream[cut:]) == [Event("message", '{"answer": "split me"}')]


def test_multibyte_characters_split_across_reads_survive():
    stream = "data: héllo 世界 🙂\n\n".encode()
    assert events_of(*[stream[i : i + 1] for i in range(len(stream))]) == [Event("message", "héllo 世界 🙂")]


def test_crlf_and_cr_line_ends_are_line_ends_even_when_split():
    assert events_of(b"data: a\r", b"\n\r", b"\ndata: b\r\r") == [
        Event("message", "a"),
        Event("message", "b"),
    ]


def test_comments_unknown_fields_and_multi_line_data():
    stream = b": keep-alive\nid: 7\nretry: 100\ndata: one\ndata:two\n\n"
    assert events_of(stream) == [Event("message", "one\ntwo")]


def test_an_event_without_its_blank_line_is_incomplete_and_dropped():
    assert events_of(b"data: complete\n\ndata: cut off") == [Event("message", "complete")]


def test_feed_returns_events_as_soon_as_they_are_complete():
    parser = SSEParser()
    assert parser.feed(b"data: first\n") == []
    assert parser.feed(b"\ndata: sec") == [Event("message", "first")]
    assert parser.close() == []


line_ends = st.sampled_from(["\n", "\r\n", "\r"])
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20)


@st.composite
def streams(draw):
    """A valid Dify-like stream (deltas, pings, comments; any line ends) and its chunks at random cuts."""
    deltas = draw(st.lists(texts, min_size=1, max_size=12))
    parts = []
    for delta in deltas:
        end = draw(line_ends)
        if draw(st.booleans()):
            parts.append(f"event: ping{end}{end}")
        if draw(st.booleans()):
            parts.append(f": comment{end}")
        parts.append(
            f"data: {json.dumps({'event': 'message', 'answer': delta}, ensure_ascii=False)}{end}{end}"
        )
    raw = "".join(parts).encode()
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(raw) - 1)), max_size=30)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True) if a < b]
    return deltas, chunks


@given(streams())
def test_any_split_of_a_valid_stream_gives_the_same_events(stream):
    deltas, chunks = stream
    messages = [json.loads(e.data)["answer"] for e in parse(chunks) if e.name != "ping"]
    assert messages == deltas
