"""The local server's child process: a watchdog that runs llama-server and kills it when orphaned.

``python -m streamscope.backends.local.child PARENT_PID COMMAND...`` runs COMMAND (llama-server)
until it exits, passes SIGTERM and SIGINT on to it, and kills it as soon as PARENT_PID is no
longer its parent (a killed kernel, ``kill -9``), whichever thread of the parent started it; the
router's model processes then see their pipe close and exit too. (Linux's ``PR_SET_PDEATHSIG``
would fire when the *thread* that forked exits, which is not the lifetime we want.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

__all__: list[str] = []


def _watch(parent_pid: int, command: list[str]) -> int:
    """Run llama-server until it exits, or until our parent is gone or asks us to stop."""
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL)

    def forward(signum: int, _frame: object) -> None:
        server.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while server.poll() is None:
        if os.getppid() != parent_pid:
            server.kill()  # the parent is gone: no graceful shutdown to wait for
            server.wait()
            return 0
        time.sleep(0.2)
    code = server.returncode
    # Pass a signal on as the shell does (128 + its number), so the parent can name it.
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(_watch(int(sys.argv[1]), sys.argv[2:]))
