"""The local server's child process: llama-cpp-python's server, exiting when its parent is gone."""

from __future__ import annotations

import os
import sys
import threading
import time


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.2)
    os._exit(0)  # the parent is gone: no atexit, no graceful shutdown to wait for


def _without_extra_buffer_types() -> None:
    """Load models without ggml's extra buffer types (weight repacking, AMX among them).

    A llama.cpp built with ``-march=native`` (pip's default build) on a machine whose CPU reports
    AMX uses AMX tiles through one of those buffer types; in this kind of VM the tile instructions
    trap (SIGILL at ``tileloadd`` in libggml-cpu, at the first prompt of a few tokens). The switch is
    llama.cpp's own model parameter ``use_extra_bufts``, which llama-cpp-python does not expose, so
    the defaults it starts from are changed here, in the server's process only.
    """
    import llama_cpp.llama_cpp as lib

    defaults = lib.llama_model_default_params

    def model_params() -> lib.llama_model_params:
        params = defaults()
        params.use_extra_bufts = False
        return params

    lib.llama_model_default_params = model_params


def _serve_child(config_path: str, parent_pid: int) -> None:
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    _without_extra_buffer_types()
    from llama_cpp.server.__main__ import main

    sys.argv = ["python -m llama_cpp.server", "--config_file", config_path]
    main()


if __name__ == "__main__":
    _serve_child(sys.argv[1], int(sys.argv[2]))
