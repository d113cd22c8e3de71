"""track_file: keepalived's number parsing, init_file, inotify watching and polling."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from pyvrrpd.track import file as track_file
from pyvrrpd.track.file import (
    FileParams,
    FileTracker,
    init_track_file,
    parse_track_value,
    read_track_file,
)


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"42\n", 42),
        (b"  -7 trailing junk", -7),
        (b"+5", 5),
        (b"0x1f", 31),
        (b"0X1F", 31),
        (b"010", 8),  # leading 0 is octal, as strtol(..., 0)
        (b"09", 0),  # octal stops at the 9
        (b"0x", 0),
        (b"", 0),
        (b"abc", 0),
        (b"2147483648", 2147483648),  # INT32_MAX + 1 is still accepted
        (b"-2147483648", -2147483648),
        (b"2147483649", None),  # out of range: ignored
        (b"99999999999999999999999", None),  # strtol overflow: ignored
    ],
)
def test_parse_track_value(data: bytes, value: int | None) -> None:
    assert parse_track_value(data) == value


def test_read_missing_file_is_zero(tmp_path: Path) -> None:
    assert read_track_file(str(tmp_path / "nope")) == 0


def test_init_file(tmp_path: Path) -> None:
    path = tmp_path / "v"
    params = FileParams("f", str(path), init_value=5)
    assert init_track_file(params) is None
    assert path.read_text() == "5\n"
    path.write_text("9\n")
    assert init_track_file(params) is None  # exists: left alone
    assert path.read_text() == "9\n"
    overwrite = FileParams("f", str(path), init_value=-3, init_overwrite=True)
    assert init_track_file(overwrite, reload=True) is None  # never on reload
    assert path.read_text() == "9\n"
    assert init_track_file(overwrite) is None
    assert path.read_text() == "-3\n"
    assert init_track_file(FileParams("f", str(tmp_path / "x"))) is None  # no init_file
    assert not (tmp_path / "x").exists()
    (tmp_path / "d").mkdir()
    error = init_track_file(FileParams("f", str(tmp_path / "d"), 0, True))
    assert error is not None and "not a regular file" in error


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, int, float]] = []
        self.changed = asyncio.Event()

    def __call__(self, name: str, value: int) -> None:
        self.events.append((name, value, time.monotonic()))
        self.changed.set()

    async def next(self, timeout: float) -> tuple[str, int, float]:
        async with asyncio.timeout(timeout):
            await self.changed.wait()
        self.changed.clear()
        return self.events[-1]


async def test_inotify_reports_writes_within_100ms(tmp_path: Path) -> None:
    path = tmp_path / "prio"
    path.write_text("3\n")
    rec = _Recorder()
    tracker = FileTracker(FileParams("tf", str(path)), rec)
    tracker.start()
    try:
        assert tracker.mode == "inotify"
        assert tracker.value == 3 and rec.events == []  # initial value: no callback
        for value in (10, -20, 0):
            written = time.monotonic()
            path.write_text(f"{value}\n")
            name, got, at = await rec.next(1.0)
            assert (name, got) == ("tf", value)
            assert at - written < 0.1
        # Same value again: no callback.
        path.write_text("0\n")
        await asyncio.sleep(0.1)
        assert len(rec.events) == 3
    finally:
        await tracker.stop()


async def test_inotify_delete_and_rename(tmp_path: Path) -> None:
    path = tmp_path / "prio"
    path.write_text("7\n")
    rec = _Recorder()
    tracker = FileTracker(FileParams("tf", str(path)), rec)
    tracker.start()
    try:
        path.unlink()
        assert (await rec.next(1.0))[1] == 0
        staged = tmp_path / "staged"
        staged.write_text("12\n")
        os.rename(staged, path)  # atomic replace: IN_MOVED_TO
        assert (await rec.next(1.0))[1] == 12
        os.rename(path, tmp_path / "elsewhere")  # moved away: IN_MOVED_FROM
        assert (await rec.next(1.0))[1] == 0
        (tmp_path / "other").write_text("99\n")  # another file in the directory
        await asyncio.sleep(0.1)
        assert [v for _, v, _ in rec.events] == [0, 12, 0]
    finally:
        await tracker.stop()


async def test_file_created_later_in_watched_dir(tmp_path: Path) -> None:
    path = tmp_path / "later"
    rec = _Recorder()
    tracker = FileTracker(FileParams("tf", str(path)), rec)
    tracker.start()
    try:
        assert tracker.value == 0
        path.write_text("4\n")
        assert (await rec.next(1.0))[1] == 4
    finally:
        await tracker.stop()


async def test_polling_when_forced(tmp_path: Path) -> None:
    path = tmp_path / "prio"
    path.write_text("1\n")
    rec = _Recorder()
    tracker = FileTracker(FileParams("tf", str(path)), rec, use_inotify=False, poll_interval=0.05)
    tracker.start()
    try:
        assert tracker.mode == "poll"
        path.write_text("6\n")
        assert (await rec.next(1.0))[1] == 6
        path.unlink()
        assert (await rec.next(1.0))[1] == 0
    finally:
        await tracker.stop()


async def test_falls_back_to_polling_when_inotify_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NoInotify:
        def __init__(self) -> None:
            raise OSError(24, "Too many open files")

    monkeypatch.setattr(track_file, "Inotify", NoInotify)
    path = tmp_path / "prio"
    rec = _Recorder()
    tracker = FileTracker(FileParams("tf", str(path)), rec, poll_interval=0.05)
    tracker.start()
    try:
        assert tracker.mode == "poll"
        path.write_text("0x10\n")
        assert (await rec.next(1.0))[1] == 16
    finally:
        await tracker.stop()


async def test_invalid_number_keeps_previous_value(tmp_path: Path) -> None:
    path = tmp_path / "prio"
    path.write_text("5\n")
    rec = _Recorder()
    tracker = FileTracker(FileParams("tf", str(path)), rec)
    tracker.start()
    try:
        path.write_text("99999999999\n")
        await asyncio.sleep(0.1)
        assert rec.events == [] and tracker.value == 5
        path.write_text("8\n")
        assert (await rec.next(1.0))[1] == 8
    finally:
        await tracker.stop()
