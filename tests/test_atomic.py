"""cnn_lib.atomic: one atomic-write helper (weights, downloads, the model cache) and the
clean-up of temporaries left by killed processes."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cnn_lib import atomic
from cnn_lib.atomic import atomic_write, clean_stale, temporary_name


def test_writes_and_replaces(tmp_path):
    target = tmp_path / "f.bin"
    with atomic_write(target) as fh:
        fh.write(b"one")
    with atomic_write(target, "w", encoding="utf-8") as fh:
        fh.write("two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    u = os.umask(0)
    os.umask(u)
    return u


def test_exception_mid_write_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as fh:
            fh.write(b"half of the new cont")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_keyboard_interrupt_mid_write_leaves_no_temporary(tmp_path):
    target = tmp_path / "f.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as fh:
            fh.write(b"x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_destination_checks_name_the_users_path(tmp_path):
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        with atomic_write(tmp_path) as fh:
            fh.write(b"x")
    missing = tmp_path / "no" / "f.bin"
    with pytest.raises(FileNotFoundError, match="f.bin"):
        with atomic_write(missing) as fh:
            fh.write(b"x")
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "f", "rb"):
            pass
    assert list(tmp_path.iterdir()) == []


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_are_removed_live_ones_kept(tmp_path):
    target = tmp_path / "w.npz"
    dead = temporary_name(target, pid=_dead_pid())
    live_parent = temporary_name(target, pid=os.getppid())      # a running process, fresh file
    old = temporary_name(target, pid=os.getppid())
    other = temporary_name(tmp_path / "other.npz", pid=_dead_pid())   # another file's: not ours to clean
    for p in (dead, live_parent, old, other):
        open(p, "wb").close()
    past = time.time() - 2 * atomic.STALE_SECONDS
    os.utime(old, (past, past))
    with atomic_write(target) as fh:
        fh.write(b"new")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["w.npz", os.path.basename(live_parent), os.path.basename(other)])


def test_legacy_patterns_cleaned_only_when_old(tmp_path):
    fresh, old = tmp_path / ".tmp-abc.npz", tmp_path / ".tmp-def.npz"
    fresh.touch()
    old.touch()
    past = time.time() - 2 * atomic.STALE_SECONDS
    os.utime(old, (past, past))
    assert clean_stale(tmp_path / "w.npz", [".tmp-*.npz"]) == [str(old)]
    assert fresh.exists()


def test_sigkill_during_save_is_cleaned_by_the_next_save(tmp_path):
    """A process killed (SIGKILL) in the middle of Sequential.save leaves its temporary; the next
    save into the same path removes it."""
    target = tmp_path / "w.npz"
    code = f"""
import sys, time, numpy as np
from cnn_lib import Sequential, Dense
def slow(fh, **arrays):
    fh.write(b"PK partial")
    fh.flush()
    print("writing", flush=True)
    time.sleep(60)
np.savez = slow
Sequential(Dense(3, 2)).save({str(target)!r})
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        leftovers = [p.name for p in tmp_path.iterdir()]
        assert len(leftovers) == 1 and leftovers[0].startswith(".w.npz.tmp-")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    from cnn_lib import Dense, Sequential
    Sequential(Dense(3, 2)).save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]
    with np.load(target) as data:
        assert sorted(data.files) == ["dense1.b", "dense1.w"]


def test_unwritable_folder_error_names_the_users_path(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can write into a read-only folder")
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        with pytest.raises(PermissionError) as e:
            with atomic_write(ro / "w.npz") as fh:
                fh.write(b"x")
    finally:
        os.chmod(ro, 0o700)
    assert str(ro / "w.npz") in str(e.value) and ".tmp" not in str(e.value)
