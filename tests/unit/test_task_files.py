"""The files API's pure parts: which paths it takes, and how a listing's answer from the
task is read back (names with newlines and bytes that are not UTF-8, every entry type)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from berth.domain.errors import Invalid
from berth.domain.files import checked_path
from berth.runtime.files import FileOperationFailed, _listing


@pytest.mark.parametrize("path", ["/", "/etc/hostname", "/tmp/a b/ü", "/srv/.hidden/x..y"])
def test_absolute_paths_without_dot_dot_are_taken(path: str) -> None:
    assert checked_path(path) == path


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("", "required"),
        ("tmp/x", "absolute"),
        ("/tmp/../etc", ".."),
        ("/tmp/..", ".."),
        ("/tmp/\0", "NUL"),
        ("/" + "x" * 4096, "4096"),
    ],
)
def test_other_paths_are_refused_naming_the_field(path: str, says: str) -> None:
    with pytest.raises(Invalid) as refused:
        checked_path(path)
    assert refused.value.field == "path" and says in refused.value.message


def test_a_listing_keeps_odd_names_and_reads_each_type() -> None:
    stats = b"81a4 5 1700000000\n41ed 4096 1700000001\na1ff 3 1700000002\n11a4 0 1700000003\n"
    names = b"new\nline\x00dir\x00link\x00\xff\xfepipe\x00"
    listing = _listing(b"dir 4 1", stats + names, "/d")
    assert listing.truncated is True
    by_name = {entry.name: entry for entry in listing.entries}
    assert {name: entry.type for name, entry in by_name.items()} == {
        "new\nline": "file",
        "dir": "dir",
        "link": "link",
        "\ufffd\ufffdpipe": "other",
    }
    assert (by_name["new\nline"].size, by_name["new\nline"].mode) == (5, 0o644)
    assert by_name["new\nline"].modified_at == datetime.fromtimestamp(1700000000, UTC)
    assert [entry.name for entry in listing.entries] == sorted(by_name)


def test_a_listing_short_of_its_names_is_an_error() -> None:
    with pytest.raises(FileOperationFailed):
        _listing(b"dir 2 0", b"81a4 5 1700000000\n81a4 5 1700000000\nonly-one\x00", "/d")
