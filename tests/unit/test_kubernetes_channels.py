"""The Kubernetes driver's wire formats: exec channel frames and statuses, the exec
prelude's marker, log lines, and kubeconfig files (no cluster)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from berth.runtime.kubernetes.channels import (
    close_frame,
    frame,
    parse_status,
    port_prefix,
    resize_frame,
    split_frame,
)
from berth.runtime.kubernetes.client import unexpected
from berth.runtime.kubernetes.config import KubeconfigError, load_config
from berth.runtime.kubernetes.execs import MarkerFilter
from berth.runtime.kubernetes.logs import CriLogDecoder, LogDecoder, parse_log_time, since_param
from tests.support.certificates import self_signed

# -- channels ---------------------------------------------------------------------------------


def test_frames_carry_their_channel_first() -> None:
    assert frame(0, b"abc") == b"\x00abc"
    assert close_frame(0) == b"\xff\x00"
    assert json.loads(resize_frame(cols=120, rows=40)[1:]) == {"Width": 120, "Height": 40}
    assert resize_frame(cols=1, rows=2)[0] == 4
    assert split_frame(b"\x02err\n") == (2, b"err\n")
    assert split_frame(b"") is None and split_frame("text") is None
    assert port_prefix(9000) == b"(#"


def test_the_error_channel_gives_the_exit_code() -> None:
    assert parse_status(b'{"metadata":{},"status":"Success"}').exit_code == 0
    failure = {
        "status": "Failure",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }
    ending = parse_status(json.dumps(failure).encode())
    assert (ending.exit_code, ending.failure) == (3, None)


def test_a_program_the_runtime_cannot_start_is_told_apart() -> None:
    message = (
        "failed to exec in container: OCI runtime exec failed: exec failed: unable to start "
        'container process: exec: "/bin/no-such": stat /bin/no-such: no such file or directory'
    )
    status = {"status": "Failure", "reason": "InternalError", "message": message}
    ending = parse_status(json.dumps(status).encode())
    assert ending.exit_code is None and ending.missing_program and not ending.not_running
    stopped = parse_status(b'{"status":"Failure","message":"container not found (\\"task\\")"}')
    assert stopped.not_running and not stopped.missing_program


# -- the exec prelude's marker ----------------------------------------------------------------


def test_the_marker_line_is_taken_off_stdout_even_when_split() -> None:
    marker = MarkerFilter("tok")
    assert marker.feed(b"to") == b""
    assert not marker.done.is_set()
    assert marker.feed(b"k 42\r\nhello") == b"hello"
    assert marker.done.is_set() and marker.pid == 42 and not marker.missing
    assert marker.feed(b"tok 7\n") == b"tok 7\n"  # only the first line is the marker


def test_the_marker_says_when_the_program_is_missing() -> None:
    marker = MarkerFilter("tok")
    assert marker.feed(b"tok missing\n") == b""
    assert marker.missing and marker.pid is None


def test_output_that_is_no_marker_is_passed_on() -> None:
    marker = MarkerFilter("tok")
    assert marker.feed(b"other\nrest") == b"other\nrest"
    assert marker.done.is_set() and marker.pid is None and not marker.missing


# -- logs -------------------------------------------------------------------------------------


def test_log_times_keep_microseconds() -> None:
    assert parse_log_time("2026-12-01T05:23:52.464671137Z") == datetime(
        2026, 12, 1, 5, 23, 52, 464671, tzinfo=UTC
    )
    assert parse_log_time("2026-12-01T05:23:52Z") == datetime(2026, 12, 1, 5, 23, 52, tzinfo=UTC)
    assert parse_log_time("garbage") is None
    assert since_param(datetime(2026, 1, 1, 0, 0, 1, 999, tzinfo=UTC)) == "2026-01-01T00:00:01Z"


def test_the_log_api_lines_split_across_chunks() -> None:
    decoder = LogDecoder()
    first = list(decoder.feed(b"2026-12-01T05:23:52.1Z one\n2026-12-01T05:23:52.2Z t"))
    rest = list(decoder.feed(b"wo\n")) + list(decoder.finish())
    assert [line.message for line in first + rest] == ["one", "two"]
    assert {line.stream for line in first + rest} == {"stdout"}


def test_cri_log_files_keep_streams_join_partial_lines_and_honour_since() -> None:
    text = (
        b"2026-12-01T05:00:00.1Z stdout F one\n"
        b"2026-12-01T05:00:00.2Z stderr F two\n"
        b"2026-12-01T05:00:00.3Z stdout P thr\n"
        b"2026-12-01T05:00:00.4Z stdout F ee\n"
        b"2026-12-01T05:00:00.5Z stdout P four\n"
    )
    decoder = CriLogDecoder()
    lines = [*decoder.feed(text[:50]), *decoder.feed(text[50:]), *decoder.finish()]
    assert [(line.stream, line.message) for line in lines] == [
        ("stdout", "one"),
        ("stderr", "two"),
        ("stdout", "three"),
        ("stdout", "four"),
    ]
    assert lines[2].timestamp == datetime(2026, 12, 1, 5, 0, 0, 300000, tzinfo=UTC)
    since = CriLogDecoder(lines[2].timestamp)
    later = [*since.feed(text), *since.finish()]
    assert [line.message for line in later] == ["three", "four"]


# -- kubeconfig -------------------------------------------------------------------------------


def _kubeconfig(tmp_path: Path, user: dict[str, object], cluster: dict[str, object]) -> Path:
    path = tmp_path / "config"
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443/", **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(json.dumps(document))  # JSON is YAML too
    return path


def test_a_kubeconfig_with_inline_certificates(tmp_path: Path) -> None:
    certificate = self_signed("berth-test")
    cert, key = certificate.cert_pem, certificate.key_pem
    b64 = base64.b64encode
    user = {"client-certificate-data": b64(cert).decode(), "client-key-data": b64(key).decode()}
    config = load_config(
        _kubeconfig(tmp_path, user, {"certificate-authority-data": b64(cert).decode()})
    )
    assert config.server == "https://10.0.0.1:6443"
    assert config.bearer() is None


def test_a_kubeconfig_with_files_relative_to_it_and_a_token_file(tmp_path: Path) -> None:
    cert = self_signed("berth-test").cert_pem
    (tmp_path / "ca.crt").write_bytes(cert)
    (tmp_path / "token").write_text("abc\n")
    config = load_config(
        _kubeconfig(tmp_path, {"tokenFile": "token"}, {"certificate-authority": "ca.crt"})
    )
    assert config.bearer() == "abc"


@pytest.mark.parametrize(
    ("user", "cluster", "rule"),
    [
        ({"exec": {"command": "aws"}}, {}, "authenticates through a plugin"),
        ({"token": "t"}, {"server": "http://10.0.0.1"}, "is not https://"),
        ({"client-certificate": "missing.crt", "client-key": "missing.key"}, {}, "cannot load"),
    ],
)
def test_kubeconfigs_berth_cannot_use_are_refused_clearly(
    tmp_path: Path, user: dict[str, object], cluster: dict[str, object], rule: str
) -> None:
    with pytest.raises(KubeconfigError, match=rule):
        load_config(_kubeconfig(tmp_path, user, {"insecure-skip-tls-verify": True, **cluster}))


def test_a_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="cannot read the kubeconfig"):
        load_config(tmp_path / "nothing")


def test_credentials_refused_and_a_permission_missing_are_told_apart() -> None:
    """A 401 (a retired token) is not a missing permission (403): each says what to fix."""
    retired = unexpected("listing tasks", httpx.Response(401, json={"message": "Unauthorized"}))
    assert "(401): Unauthorized" in str(retired)
    assert "does not accept berth's credentials" in str(retired)
    missing = unexpected("listing tasks", httpx.Response(403, json={"message": "forbidden"}))
    assert "lack a permission berth needs" in str(missing)
