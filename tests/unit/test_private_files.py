"""Key files: private from creation, never seen half written, one key when creators race."""

from __future__ import annotations

import json
import multiprocessing
import stat
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from berth.gateway.ssh.host_key import load_or_create_host_key
from berth.private_files import (
    create_private_file,
    read_or_create_private_file,
    replace_private_file,
)
from berth.sdk.config import write_config
from berth.store.keyfiles import KeyFileError, load_or_create_key

ROUNDS = 200
PROCESSES = 6
HOST_KEY_ROUNDS = 20


def test_a_created_file_is_private_whole_and_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "a.key"
    assert create_private_file(path, b"first") is True
    assert create_private_file(path, b"second") is False
    assert path.read_bytes() == b"first"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["a.key"]  # No temporary left.


def test_a_replaced_file_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "token"
    replace_private_file(path, b"one")
    path.chmod(0o644)
    replace_private_file(path, b"two")
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["token"]


def test_the_maker_runs_only_when_the_file_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "k"
    assert read_or_create_private_file(path, lambda: b"made") == b"made"

    def must_not_run() -> bytes:
        raise AssertionError("the key exists; nothing should be made")

    assert read_or_create_private_file(path, must_not_run) == b"made"


def test_an_empty_key_file_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_bytes(b"")
    with pytest.raises(KeyFileError, match="is empty"):
        load_or_create_key(path)
    assert path.read_bytes() == b""


def _race_for_keys(directory: Path, barrier: Barrier) -> list[bytes | str]:
    """In a child process: for each round, wait for every racer, then load or create a key.

    A failure is recorded, not raised, so the racers stay in step and the test names it.
    """
    keys: list[bytes | str] = []
    for round_number in range(ROUNDS):
        barrier.wait(timeout=30)
        try:
            keys.append(load_or_create_key(directory / f"round-{round_number}.key"))
        except Exception as exc:
            keys.append(repr(exc))
    return keys


def _race_for_host_keys(directory: Path, barrier: Barrier) -> list[str]:
    fingerprints = []
    for round_number in range(HOST_KEY_ROUNDS):
        barrier.wait(timeout=30)
        key = load_or_create_host_key(directory / f"host-{round_number}")
        fingerprints.append(key.get_fingerprint())
    return fingerprints


def test_processes_creating_the_same_key_at_once_all_use_one_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(PROCESSES, mp_context=context) as pool:
        barrier = manager.Barrier(PROCESSES)
        futures = [pool.submit(_race_for_keys, tmp_path, barrier) for _ in range(PROCESSES)]
        results = [future.result(timeout=60) for future in futures]
    for round_number in range(ROUNDS):
        stored = (tmp_path / f"round-{round_number}.key").read_bytes().strip()
        assert len(stored) == 43  # 32 random bytes, URL-safe base64.
        assert {keys[round_number] for keys in results} == {stored}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"round-{n}.key" for n in range(ROUNDS)
    )


def test_gateways_creating_the_host_key_at_once_agree_on_one(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(PROCESSES, mp_context=context) as pool:
        barrier = manager.Barrier(PROCESSES)
        futures = [pool.submit(_race_for_host_keys, tmp_path, barrier) for _ in range(PROCESSES)]
        results = [future.result(timeout=60) for future in futures]
    for round_number in range(HOST_KEY_ROUNDS):
        assert len({fingerprints[round_number] for fingerprints in results}) == 1
    assert all(not p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_concurrent_config_writes_are_never_seen_half_written(tmp_path: Path) -> None:
    """Threads of one process rewrite the file while another reads it: every read is whole."""
    path = tmp_path / "config.json"
    write_config(path, url="http://start", api_key="k" * 200_000)
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = 0

    def writer(number: int) -> None:
        try:
            for _ in range(30):
                write_config(path, url=f"http://writer-{number}", api_key=str(number) * 200_000)
        except BaseException as exc:  # Reported below, with the reader's findings.
            errors.append(exc)

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                data = json.loads(path.read_text())
            except BaseException as exc:
                errors.append(exc)
                return
            assert len(data["api_key"]) == 200_000
            reads += 1

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    watcher.join()
    assert errors == []
    assert reads > 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
