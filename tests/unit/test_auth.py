"""The API token file: created private, reused, refused when others can read it."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from micado.api.auth import TokenError, check_bearer, ensure_token


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_token_created_0600_with_private_parents(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "micado" / "api-token"
    token = ensure_token(path)
    assert len(token) >= 40  # token_urlsafe(32): 43 characters, 256 bits
    assert path.read_text().strip() == token
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["api-token"]  # no temporary left


def test_token_reused_not_regenerated(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    first = ensure_token(path)
    assert ensure_token(path) == first
    other = tmp_path / "other"
    assert ensure_token(other) != first


def test_existing_token_read_and_stripped(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    path.write_text("  my-token\n")
    path.chmod(0o600)
    assert ensure_token(path) == "my-token"
    path.chmod(0o400)
    assert ensure_token(path) == "my-token"


@pytest.mark.parametrize("file_mode", [0o644, 0o640, 0o604, 0o660])
def test_refuses_token_readable_by_others(tmp_path: Path, file_mode: int) -> None:
    path = tmp_path / "api-token"
    path.write_text("leaked-token\n")
    path.chmod(file_mode)
    with pytest.raises(TokenError) as info:
        ensure_token(path)
    message = str(info.value)
    assert str(path) in message and f"mode {file_mode:04o}" in message
    assert "chmod 600" in message and "leaked-token" not in message
    assert path.read_text() == "leaked-token\n"  # left alone, not silently replaced


def test_refuses_empty_token_file(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    path.write_text("\n  \n")
    path.chmod(0o600)
    with pytest.raises(TokenError, match="api-token: the API token file is empty"):
        ensure_token(path)


def test_refuses_a_directory_or_a_symlink(tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)
    with pytest.raises(TokenError, match="not a regular file"):
        ensure_token(directory)
    target = tmp_path / "real"
    target.write_text("t\n")
    target.chmod(0o600)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(TokenError, match="is a symbolic link"):
        ensure_token(link)


def test_concurrent_creation_agrees_on_one_token(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    results: list[str] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        results.append(ensure_token(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert results[0] == path.read_text().strip()
    assert mode(path) == 0o600


def test_check_bearer() -> None:
    assert check_bearer("Bearer abc", "abc")
    assert check_bearer("bearer abc", "abc")
    assert check_bearer("  Bearer   abc ", "abc")
    assert not check_bearer(None, "abc")
    assert not check_bearer("", "abc")
    assert not check_bearer("Bearer", "abc")
    assert not check_bearer("Bearer abd", "abc")
    assert not check_bearer("Bearer abcd", "abc")
    assert not check_bearer("Basic abc", "abc")
    assert not check_bearer("abc", "abc")
    assert not check_bearer("Bearer ", "")
    assert not check_bearer("Bearer é", "abc")
