"""Stand-ins for the replay server's worker functions, run in its worker processes by the tests.

Each says it started (a file ``started-PID`` in the folder ``$HELD_WORKER_GATE``), waits until
the test opens the gate (a file ``open`` there), then does the real work. So a test knows, with
no timing assumption, that a worker process is busy with a body or a recording file, and which
process it is (to kill it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from streamscope.replay import loading, worker

GATE_ENV = "HELD_WORKER_GATE"


def _hold() -> None:
    gate = Path(os.environ[GATE_ENV])
    (gate / f"started-{os.getpid()}").touch()
    deadline = time.monotonic() + 120  # a test that never opens the gate must not leave this behind
    while not (gate / "open").exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def held_match(catalog: Any, path: str, raw: bytes) -> Any:
    _hold()
    return worker._in_worker(catalog, path, raw)


def held_read(path: str) -> Any:
    _hold()
    return loading.read_packed(path)


def started(gate: Path, count: int = 1, timeout: float = 60) -> list[int]:
    """The pids of the first ``count`` held calls, once that many have started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = sorted(int(p.name.split("-", 1)[1]) for p in gate.glob("started-*"))
        if len(pids) >= count:
            return pids
        time.sleep(0.01)
    raise AssertionError(f"{count} held worker call(s) did not start within {timeout} s")
