"""Progress reports: a tqdm bar on a terminal, periodic plain lines anywhere else (CI, nohup, log files)."""
from __future__ import annotations

import io
import sys

import pytest
from tqdm import tqdm

from scratchformers.train import progress
from scratchformers.train.progress import PlainProgress, progress_bar


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(progress.time, "monotonic", fake)
    return fake


def test_a_log_gets_a_plain_line_every_interval_and_at_the_end(clock: FakeClock) -> None:
    out = io.StringIO()
    bar = PlainProgress(total=1000, desc="training", unit="step", interval=30.0, file=out)
    for _ in range(1000):  # one step per second
        clock.now += 1.0
        bar.update(1)
    bar.close()
    bar.close()  # closing twice writes nothing more
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 1000 // 30 + 1
    assert lines[0] == "training: 30/1,000 steps (3%), 1.00 steps/s, 00:30 elapsed, 16:10 left"
    assert lines[-1] == "training: 1,000/1,000 steps (100%), 1.00 steps/s, 16:40 elapsed"


def test_a_resumed_run_counts_its_rate_from_where_it_started(clock: FakeClock) -> None:
    out = io.StringIO()
    with PlainProgress(total=100, initial=40, unit="step", interval=60.0, file=out) as bar:
        clock.now += 10.0
        bar.update(20)
    assert out.getvalue() == "60/100 steps (60%), 2.00 steps/s, 00:10 elapsed, 00:20 left\n"


def test_wrapping_an_iterable(clock: FakeClock, capsys: pytest.CaptureFixture) -> None:
    assert list(progress_bar(["a", "b", "c"], desc="writing train.bin", unit="shard")) == ["a", "b", "c"]
    assert capsys.readouterr().err == "writing train.bin: 3/3 shards (100%), 0.00 shards/s, 00:00 elapsed\n"
    assert list(progress_bar(["a"], disable=True)) == ["a"] and capsys.readouterr().err == ""


def test_a_terminal_gets_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress_bar(total=3, desc="x", disable=True)
    assert isinstance(bar, tqdm)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert isinstance(progress_bar(total=3), PlainProgress)


def test_update_without_an_iterable_and_iterating_one_without(clock: FakeClock) -> None:
    bar = PlainProgress(total=None, interval=0.0, file=io.StringIO())
    bar.update(5)
    assert bar.line() == "5 items, 0.00 items/s, 00:00 elapsed"
    with pytest.raises(TypeError, match="without an iterable"):
        iter(bar).__next__()
