"""Crash-safe file replacement, the one writer for every file ztone writes.

A write goes to a temporary file beside the target (``.<name>.<pid>.<hex>.tmp``),
is fsynced, renamed over the target, and then the directory is fsynced: after a
crash the target holds either the old bytes or the new ones, never a mix, and no
temporary file is left behind by a failed write.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

DIRECTORY_MODE = 0o755
"""Mode of a parent directory the writer has to create."""


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename or creation in ``directory`` durable (best effort: some file
    systems cannot fsync a directory, and the rename is atomic anyway)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_file(
    path: str | os.PathLike[str], data: bytes, mode: int | None = None, *, make_parents: bool = True
) -> bool:
    """Replace ``path`` by ``data`` atomically; return False if it already held ``data``.

    The new file gets ``mode`` exactly (not filtered by the umask), or else the
    replaced file's mode, or ``0666 & ~umask`` for a new file. A symlink at ``path``
    is followed. Missing parent directories are created (``DIRECTORY_MODE``) unless
    ``make_parents`` is false (the idtool, like zerotier-idtool, fails instead).
    Raises ``OSError`` on failure, leaving ``path`` as it was and no temporary file.
    """
    target = Path(path)
    if target.is_symlink():
        target = target.resolve()
    try:
        current_mode: int | None = stat.S_IMODE(target.stat().st_mode)
    except OSError:
        current_mode = None
    try:
        same = target.read_bytes() == data
    except OSError:
        same = False
    if same:
        if mode is not None and current_mode != mode:
            os.chmod(target, mode)
        return False
    directory = target.parent
    if make_parents:
        directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    temp = directory / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    final_mode = mode if mode is not None else current_mode
    # Secrets never exist with looser permissions than asked, not even briefly.
    create_mode = 0o666 if final_mode is None else (final_mode & 0o600)
    fd = os.open(
        temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), create_mode
    )
    try:
        with os.fdopen(fd, "wb") as f:
            if final_mode is not None:
                os.fchmod(f.fileno(), final_mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    fsync_directory(directory)
    return True
