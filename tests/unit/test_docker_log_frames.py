"""The Docker logs stream decoder and engine timestamp parsing (pure logic, no engine)."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone

import pytest

from berth.runtime.docker.logs import (
    FrameDemuxer,
    LogDecoder,
    parse_engine_time,
    since_param,
    split_timestamp,
)

T1 = "2024-01-01T00:00:00.123456789Z"
T2 = "2024-01-01T00:00:01.5Z"


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def decode(decoder: LogDecoder, chunks: list[bytes]) -> list[tuple[str, str]]:
    lines = [line for chunk in chunks for line in decoder.feed(chunk)]
    lines += decoder.finish()
    return [(line.stream, line.message) for line in lines]


# -- timestamps -------------------------------------------------------------------------------


def test_parse_engine_time_keeps_microseconds_of_nanosecond_precision() -> None:
    assert parse_engine_time(T1) == datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)


def test_parse_engine_time_zero_time_and_garbage_are_none() -> None:
    assert parse_engine_time("0001-01-01T00:00:00Z") is None
    assert parse_engine_time("") is None
    assert parse_engine_time(None) is None
    assert parse_engine_time("yesterday") is None
    assert parse_engine_time(T1 + " trailing") is None


def test_parse_engine_time_converts_offsets_to_utc() -> None:
    parsed = parse_engine_time("2024-01-01T02:30:00.5+02:00")
    assert parsed == datetime(2024, 1, 1, 0, 30, 0, 500000, tzinfo=UTC)
    assert parsed is not None and parsed.tzinfo is UTC


def test_parse_engine_time_without_fraction() -> None:
    assert parse_engine_time("2024-06-30T23:59:59Z") == datetime(
        2024, 6, 30, 23, 59, 59, tzinfo=UTC
    )


def test_split_timestamp() -> None:
    when, rest = split_timestamp(f"{T1} hello world".encode())
    assert when == datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert rest == b"hello world"
    assert split_timestamp(f"{T1} ".encode())[1] == b""
    assert split_timestamp(b"no timestamp here") == (None, b"no timestamp here")
    # A timestamp glued to text is not a prefix.
    assert split_timestamp(f"{T1}x".encode())[0] is None


def test_since_param_is_exact_unix_seconds() -> None:
    since = datetime(2024, 1, 1, 0, 0, 1, 250000, tzinfo=UTC)
    assert since_param(since) == "1704067201.250000"
    other_zone = since.astimezone(timezone(timedelta(hours=-5)))
    assert since_param(other_zone) == "1704067201.250000"
    assert since_param(since.replace(tzinfo=None)) == "1704067201.250000"


# -- frames -----------------------------------------------------------------------------------


def test_demuxer_reassembles_frames_cut_anywhere() -> None:
    data = frame(1, b"out") + frame(2, b"err") + frame(1, b"")
    for cut in range(len(data) + 1):
        demuxer = FrameDemuxer()
        frames = list(demuxer.feed(data[:cut])) + list(demuxer.feed(data[cut:]))
        assert frames == [("stdout", b"out"), ("stderr", b"err"), ("stdout", b"")]
        assert demuxer.pending == 0


def test_demuxer_byte_by_byte_keeps_incomplete_frame_pending() -> None:
    demuxer = FrameDemuxer()
    data = frame(2, b"x" * 300)
    frames = [f for byte in data[:-1] for f in demuxer.feed(bytes([byte]))]
    assert frames == []
    assert demuxer.pending == len(data) - 1
    assert list(demuxer.feed(data[-1:])) == [("stderr", b"x" * 300)]


def test_decoder_splits_streams_and_lines_in_order() -> None:
    decoder = LogDecoder(tty=False)
    chunks = [
        frame(1, f"{T1} one\n".encode()),
        frame(2, f"{T1} two\n".encode()),
        frame(1, f"{T2} three\n".encode()),
    ]
    assert decode(decoder, [b"".join(chunks)]) == [
        ("stdout", "one"),
        ("stderr", "two"),
        ("stdout", "three"),
    ]


def test_decoder_parses_timestamps() -> None:
    decoder = LogDecoder(tty=False)
    lines = decoder.feed(frame(1, f"{T1} one\n".encode()) + frame(2, f"{T2} two\n".encode()))
    assert [line.timestamp for line in lines] == [
        datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
        datetime(2024, 1, 1, 0, 0, 1, 500000, tzinfo=UTC),
    ]


def test_decoder_yields_final_partial_line_at_finish() -> None:
    decoder = LogDecoder(tty=False)
    assert decoder.feed(frame(1, f"{T1} done\n".encode())) != []
    assert decoder.feed(frame(1, f"{T2} no newline".encode())) == []
    final = decoder.finish()
    assert [(line.stream, line.message) for line in final] == [("stdout", "no newline")]
    assert final[0].timestamp == datetime(2024, 1, 1, 0, 0, 1, 500000, tzinfo=UTC)
    assert decoder.finish() == []


def test_decoder_buffers_partial_lines_per_stream() -> None:
    # A long line split by the engine into several entries, interleaved with the other stream:
    # the continuation entry's own timestamp is not part of the text.
    decoder = LogDecoder(tty=False)
    chunks = [
        frame(1, f"{T1} first half ".encode()),
        frame(2, f"{T1} err line\n".encode()),
        frame(1, f"{T2} second half\n".encode()),
    ]
    assert decode(decoder, chunks) == [("stderr", "err line"), ("stdout", "first half second half")]


def test_decoder_several_lines_in_one_frame_and_empty_lines() -> None:
    decoder = LogDecoder(tty=False)
    data = frame(1, f"{T1} a\n".encode()) + frame(1, f"{T1} \n".encode())
    assert decode(decoder, [data]) == [("stdout", "a"), ("stdout", "")]


def test_decoder_tty_stream_is_raw_stdout_and_drops_carriage_returns() -> None:
    decoder = LogDecoder(tty=True)
    data = f"{T1} hello\r\n{T2} wor".encode()
    assert decode(decoder, [data[:10], data[10:], b"ld"]) == [
        ("stdout", "hello"),
        ("stdout", "world"),
    ]


def test_decoder_invalid_utf8_is_replaced() -> None:
    decoder = LogDecoder(tty=False)
    assert decode(decoder, [frame(2, T1.encode() + b" \xff\xfe ok\n")]) == [
        ("stderr", "\ufffd\ufffd ok")
    ]


@pytest.mark.parametrize("stream", [0, 1])
def test_decoder_stdin_and_stdout_frames_are_stdout(stream: int) -> None:
    decoder = LogDecoder(tty=False)
    assert decode(decoder, [frame(stream, f"{T1} x\n".encode())]) == [("stdout", "x")]


def test_decoder_line_without_timestamp_reuses_previous_time() -> None:
    decoder = LogDecoder(tty=False)
    lines = decoder.feed(frame(1, f"{T1} a\n".encode()) + frame(1, b"bare\n"))
    assert lines[1].message == "bare"
    assert lines[1].timestamp == lines[0].timestamp
