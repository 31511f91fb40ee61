"""The shared servers: one replay server and one local server per process, started on first use.

Every replay client uses the one replay server (started in a background thread), every ``local``
client the one local server (a child process); both stop when Python exits. :func:`reset` stops
and forgets them, so that a test can start from none.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from ..replay import ReplayServer
from .local import LocalServer

__all__ = ["reset", "shared_local_server", "shared_replay_server", "use"]

_lock = threading.Lock()
_servers: dict[str, Any] = {}  # "replay" -> ReplayServer, "local" -> LocalServer


def shared_replay_server() -> ReplayServer:
    """The replay server every replay client uses, started on first call."""
    with _lock:
        if "replay" not in _servers:
            server = _servers["replay"] = ReplayServer().start()
            atexit.register(server.stop)
        return _servers["replay"]


def shared_local_server() -> LocalServer:
    """The local server every ``local`` client uses, started on first call, stopped at exit."""
    with _lock:
        if "local" not in _servers:
            server = LocalServer()
            atexit.register(server.stop)
            _servers["local"] = server.start()
        return _servers["local"]


def use(kind: str, server: Any) -> None:
    """Make ``server`` the shared one of ``kind`` ("replay" or "local"), e.g. a test's stand-in."""
    with _lock:
        _servers[kind] = server


def reset(kind: str | None = None) -> None:
    """Stop the shared server of ``kind`` (default: both) and forget it: the next client starts a new one."""
    with _lock:
        servers = [_servers.pop(k) for k in list(_servers) if kind in (None, k)]
    for server in servers:
        server.stop()
