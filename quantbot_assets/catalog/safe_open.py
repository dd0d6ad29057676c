"""Opening a file below a trusted directory with no symbolic link on the way, race-free.

`open_below(root_fd, parts)` walks `parts` one component at a time with
`openat(..., O_NOFOLLOW)`, each step relative to the descriptor of the
directory before it, and returns a descriptor of the regular file at the end.
Whatever happens to the names meanwhile (a file or a folder swapped for a
symbolic link), the descriptor is of a file that was below the root when it
was opened: there is no gap between checking a path and reading it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
# O_NONBLOCK: a FIFO planted in place of a file must not block the reader.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
_PROC_FD = os.path.isdir("/proc/self/fd")


class UnsafePath(OSError):
    """A component is missing, a symbolic link, or not of the expected kind."""


def _why(parent_fd: int, name: str, shown: str, want_dir: bool, exc: OSError) -> UnsafePath:
    # The lstat only words the message; the refusal came from the open itself.
    try:
        info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError:
        return UnsafePath(f"{shown} is missing")
    if stat.S_ISLNK(info.st_mode):
        return UnsafePath(f"{shown} is a symbolic link")
    kind = "directory" if want_dir else "regular file"
    return UnsafePath(f"{shown} is not a {kind} ({exc.strerror or exc})")


def open_below(root_fd: int, parts: Sequence[str], shown: str) -> int:
    """A descriptor of the regular file `root/parts...` (no symlink followed, no blocking).

    `shown` names the path in error messages. Raises `UnsafePath`.
    """
    if not parts or any(part in ("", ".", "..") or "/" in part for part in parts):
        raise UnsafePath(f"{shown} is not a plain relative path")
    current = root_fd
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            try:
                fd = os.open(part, _FILE_FLAGS if last else _DIR_FLAGS, dir_fd=current)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT, errno.EMLINK):
                    raise _why(current, part, shown, not last, exc) from None
                raise
            if current != root_fd:
                os.close(current)
            current = fd
        if not stat.S_ISREG(os.fstat(current).st_mode):
            raise UnsafePath(f"{shown} is not a regular file")
    except BaseException:
        if current != root_fd:
            os.close(current)
        raise
    return current


def reopen_path(fd: int) -> str | None:
    """A path that opens the very file behind `fd` (Linux `/proc/self/fd`), else None."""
    return f"/proc/self/fd/{fd}" if _PROC_FD else None
