"""The reader's switch interval: one process-wide setting, lowered while any reader runs.

Each reader used to save the interval it found and restore that: a reader started while another
ran (one left reading a stalled stream after Kernel > Interrupt) saved the lowered value, and if
it ended last, left the process at 0.5 ms for good. The setting is now counted: the first reader
lowers it, the last to end restores it, however each ended.
"""

from __future__ import annotations

import _thread
import sys
import threading
from collections.abc import Iterator

import pytest
from streamscope.charts import LiveChart
from streamscope.reader import READER_SWITCH_INTERVAL_S, SWITCH_INTERVAL, StreamReader
from synthetic_streams import chunk, chunk_source

LOWERED = min(READER_SWITCH_INTERVAL_S, sys.getswitchinterval())


@pytest.fixture(autouse=True)
def default_interval() -> Iterator[float]:
    before = sys.getswitchinterval()
    assert SWITCH_INTERVAL.readers == 0
    yield before
    sys.setswitchinterval(before)


def stalled(release: threading.Event) -> Iterator[dict]:
    """A stream whose second chunk waits for ``release``."""
    yield chunk({"role": "assistant"})
    release.wait(10)
    yield chunk({"content": "late"})
    yield chunk({}, "stop")


def test_overlapping_readers_restore_it_when_the_last_ends(default_interval: float) -> None:
    for first_to_end in (0, 1):
        releases = [threading.Event(), threading.Event()]
        readers = [StreamReader().start(lambda r=r: stalled(r)) for r in releases]
        assert sys.getswitchinterval() == LOWERED
        releases[first_to_end].set()
        readers[first_to_end].join()
        assert sys.getswitchinterval() == LOWERED  # the other one still reads
        releases[1 - first_to_end].set()
        readers[1 - first_to_end].join()
        assert sys.getswitchinterval() == default_interval
        assert SWITCH_INTERVAL.readers == 0


def test_an_interrupted_chart_then_another_reader_restore_it(default_interval: float) -> None:
    release = threading.Event()
    chart = LiveChart("interrupted")
    threading.Timer(0.2, _thread.interrupt_main).start()  # Kernel > Interrupt, while the stream stalls
    with pytest.raises(KeyboardInterrupt):
        chart.run(lambda: stalled(release))
    assert "INCOMPLETE: interrupted" in chart.summary()
    assert sys.getswitchinterval() == LOWERED  # its reader waits for the stalled chunk
    other_release = threading.Event()
    other = StreamReader().start(lambda: stalled(other_release))
    release.set()  # the interrupted reader closes its stream at the next chunk and ends first
    chart._reader.join()
    assert sys.getswitchinterval() == LOWERED
    other_release.set()
    other.join()
    assert sys.getswitchinterval() == default_interval


def test_readers_that_fail_or_are_stopped_restore_it(default_interval: float) -> None:
    def refused() -> Iterator[dict]:
        raise PermissionError("401 from the test factory")

    failing = StreamReader().start(refused)
    failing.join()
    assert isinstance(failing.error, PermissionError)
    assert sys.getswitchinterval() == default_interval
    broken = StreamReader().start(lambda: chunk_source(fail_after=1))
    broken.join()
    assert isinstance(broken.error, ConnectionError)
    stopped = StreamReader().start(lambda: chunk_source(gap=0.01))
    stopped.stop()
    stopped.join()
    assert sys.getswitchinterval() == default_interval
    assert SWITCH_INTERVAL.readers == 0
