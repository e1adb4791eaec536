"""The API's bearer token: created once on the controller host, only its owner may read it."""

from __future__ import annotations

import contextlib
import errno
import hmac
import os
import secrets
import stat
from pathlib import Path


class TokenError(RuntimeError):
    """The token file cannot be used safely; the message says why and where."""


def ensure_token(path: Path | str) -> str:
    """The token in `path`, created (0600, parents 0700) with a fresh random value if absent.

    Creation goes through a private temporary file hard-linked into place, so the token file
    never exists half-written or with a wider mode, and two controllers starting together end
    up with one token.
    """
    path = Path(path)
    try:
        return _read_token(path)
    except FileNotFoundError:
        pass
    try:
        _make_private_dirs(path.parent)
        _create_token(path)
    except FileExistsError:
        pass  # another process created it first: use theirs
    except OSError as exc:
        raise TokenError(f"{path}: cannot create the API token file: {exc}") from None
    try:
        return _read_token(path)
    except FileNotFoundError:
        raise TokenError(f"{path}: the API token file disappeared while it was created") from None


def _make_private_dirs(directory: Path) -> None:
    """Create missing directories 0700 (Path.mkdir gives parents the default mode)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for item in reversed(missing):
        with contextlib.suppress(FileExistsError):
            item.mkdir(mode=0o700)
            item.chmod(0o700)  # the umask may have narrowed it; never widened


def _create_token(path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)  # the umask can only narrow it; make it exact
            handle.write(secrets.token_urlsafe(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)  # fails if the file appeared meanwhile, unlike rename
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    with contextlib.suppress(OSError):  # make the new directory entry durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _read_token(path: Path) -> str:
    """Raises FileNotFoundError when absent, TokenError when present but unusable."""
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang the controller
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise TokenError(f"{path}: the API token file is a symbolic link; point "
                             "token_file at the file itself") from None
        raise TokenError(f"{path}: cannot open the API token file: {exc}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise TokenError(f"{path}: the API token file is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_mode & 0o077:
            raise TokenError(f"{path}: the API token file is accessible by group or others (mode "
                             f"{stat.S_IMODE(info.st_mode):04o}); run chmod 600 {path}")
        raw = handle.read(4096)
    try:
        token = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise TokenError(f"{path}: the API token file is not text") from None
    if not token:
        raise TokenError(f"{path}: the API token file is empty; delete it to have a new token "
                         "generated, or write one into it")
    return token


def check_bearer(header: str | None, token: str) -> bool:
    """True when an Authorization header carries exactly this bearer token (constant time)."""
    if not header or not token:
        return False
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode("utf-8"), token.encode("utf-8"))
