"""Atomic file writes: a file appears under its final name complete, or not at all.

:func:`atomic_write` writes to a temporary file in the same folder, flushes and fsyncs it,
then renames it over the destination (``os.replace``, atomic on POSIX and Windows). On any
exception the temporary is removed and the old file, if any, is left as it was.

A process killed mid-write (SIGKILL, a power cut) cannot remove its temporary. Temporaries
are therefore named ``.<name>.tmp-<pid>-<random>`` after the file they will become and the
process that writes them, and every :func:`atomic_write` to ``<name>`` first removes the
*stale* ones: those whose writing process no longer runs on this machine, or that have not
been written to for :data:`STALE_SECONDS`. A concurrent writer that is alive and writing is
never disturbed (every writer of this library writes at least once a minute).
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import time

__all__ = ["atomic_write", "clean_stale", "temporary_name", "STALE_SECONDS"]

#: A temporary not written to for this many seconds is stale, even if its process still runs.
STALE_SECONDS = 60.0


def temporary_name(path, pid=None):
    """The temporary file :func:`atomic_write` uses for ``path`` (in the same folder)."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    pid = os.getpid() if pid is None else pid
    return os.path.join(folder, f".{name}.tmp-{pid}-{secrets.token_hex(4)}")


def _pid_alive(pid):
    if pid == os.getpid() or os.name == "nt":   # on Windows os.kill would terminate it: rely on age only
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True            # exists, owned by someone else (or cannot tell): keep
    return True


def _is_stale(tmp, now):
    try:
        age = now - os.stat(tmp).st_mtime
    except OSError:
        return False
    if age > STALE_SECONDS:
        return True
    try:
        pid = int(os.path.basename(tmp).rsplit(".tmp-", 1)[1].split("-")[0])
    except (IndexError, ValueError):
        return False
    return not _pid_alive(pid)


def clean_stale(path, extra_patterns=()):
    """Removes the stale temporaries of ``path`` (see the module docstring); returns their paths.

    ``extra_patterns``: glob patterns (in ``path``'s folder) of older temporary names of our
    own that carry no process id; those are removed once older than :data:`STALE_SECONDS`."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    now, removed = time.time(), []
    candidates = [(p, True) for p in glob.glob(os.path.join(glob.escape(folder), glob.escape(f".{name}.tmp-") + "*"))]
    for pattern in extra_patterns:
        candidates += [(p, False) for p in glob.glob(os.path.join(glob.escape(folder), pattern))]
    for tmp, has_pid in candidates:
        try:
            stale = _is_stale(tmp, now) if has_pid else now - os.stat(tmp).st_mtime > STALE_SECONDS
            if stale:
                os.remove(tmp)
                removed.append(tmp)
        except OSError:
            pass               # gone already, or not ours to remove: leave it
    return removed


def _file_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_write(path, mode="wb", *, encoding=None, extra_patterns=()):
    """Context manager: ``with atomic_write("w.npz") as fh: fh.write(...)``.

    Yields a file object open on a temporary in ``path``'s folder; when the block ends without
    an exception the file is flushed, fsynced and renamed to ``path`` (with the usual
    permissions, ``0o666`` minus the umask). On an exception (including KeyboardInterrupt) the
    temporary is removed and ``path`` is untouched. Stale temporaries of ``path`` left by killed
    processes are removed first (:func:`clean_stale`).

    Raises ``ValueError`` for a read mode, ``IsADirectoryError`` if ``path`` is a folder,
    ``FileNotFoundError`` if its folder does not exist.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write writes files: mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not a file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: the folder {folder} does not exist")
    clean_stale(path, extra_patterns)
    tmp = temporary_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:     # name the user's path, not our temporary
        raise type(e)(e.errno, f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, mode, encoding=encoding if mode == "w" else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise type(e)(e.errno, f"cannot write {path}: {e.strerror}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
