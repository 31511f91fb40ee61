"""The relay, served from a background thread of the kernel on a free loopback port: ``Relay(...).start()``.

It binds 127.0.0.1 (or another loopback address) only, and stops with the kernel (``atexit``), or on
``.stop()``. Its upstream is ``streamscope.async_client()``: whichever backend is active (replay, local,
live), through the official SDK.
"""

from __future__ import annotations

import asyncio
import atexit
import secrets
import threading
from collections.abc import Sequence
from typing import Any

import openai
import uvicorn
from starlette.middleware import Middleware

from ..backends.switch import async_client
from ..errors import BackendError
from ..replay.contract import _is_loopback
from ..replay.server import _bind, _precise_loop, _ReplayProtocol
from .app import create_app
from .log import RelayLog

HEARTBEAT_S = 15.0  # well inside the idle timeouts of common proxies (nginx: 60 s)


class Relay:
    """A relay from the active backend to a web page, as SSE; ``.url`` is the page."""

    def __init__(
        self,
        *,
        model: str,
        temperature: float = 0,
        backend: str | None = None,
        speed: float | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        middleware: Sequence[Middleware] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not _is_loopback(host):
            raise BackendError(f"the relay listens on loopback only (127.0.0.1, ::1), not {host!r}")
        self.host, self.port = host, port
        self.backend, self.speed = backend, speed
        self.log = RelayLog()
        self._upstream: openai.AsyncOpenAI | None = None
        self.secret = secrets.token_urlsafe(16)
        self._app = create_app(
            self.log,
            self._client,
            {"model": model, "temperature": temperature},
            secret=self.secret,
            heartbeat_s=heartbeat_s,
            middleware=middleware,
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> openai.AsyncOpenAI:
        # Made on the relay's own loop, at its first request: an async client belongs to one loop.
        if self._upstream is None:
            self._upstream = async_client(self.backend, speed=self.speed, max_retries=0)
        return self._upstream

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def proxy_path(self) -> str:
        """The page's path through jupyter-server-proxy, under the Jupyter server's base URL.

        It takes the secret path: there the Host header names the Jupyter server, which on a hub is no
        loopback address.
        """
        return f"proxy/{self.port}/{self.secret}/"

    def start(self) -> Relay:
        if self._thread is not None:
            raise RuntimeError("this Relay is already started")
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            http=_ReplayProtocol,  # type: ignore[arg-type]
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = server = uvicorn.Server(config)
        started = threading.Event()

        def serve() -> None:
            with asyncio.Runner(loop_factory=_precise_loop) as runner:
                self._loop = runner.get_loop()
                started.set()
                runner.run(server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=serve, name=f"streamscope-relay-{self.port}", daemon=True)
        self._thread.start()
        started.wait()
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._server = self._thread = self._loop = None
        atexit.unregister(self.stop)

    def _in_loop(self, fn: Any) -> Any:
        if self._loop is None:
            raise RuntimeError("the relay is not running")

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=5)

    def open_tasks(self) -> list[str]:
        """The relay loop's tasks besides the server's own: a stream still relaying, a read left pending."""

        def tasks() -> list[str]:
            here = asyncio.current_task()
            names = (getattr(t.get_coro(), "__qualname__", "?") for t in asyncio.all_tasks() if t is not here)
            return sorted(name for name in names if name != "Server.serve")

        return self._in_loop(tasks)

    def upstream_connections(self) -> dict[str, int]:
        """The upstream client's pooled connections: busy (a response still open) and idle (kept alive)."""
        if self._upstream is None:
            return {"busy": 0, "idle": 0}
        transport = self._upstream._client._transport  # type: ignore[attr-defined]
        # A backend that substitutes models wraps httpx's own transport: the pool is the inner one's.
        pool = getattr(transport, "inner", transport)._pool

        def count() -> dict[str, int]:
            idle = sum(1 for c in pool.connections if c.is_idle())
            return {"busy": len(pool.connections) - idle, "idle": idle}

        return self._in_loop(count)

    def __repr__(self) -> str:
        state = "running" if self._thread is not None else "stopped"
        return f"<Relay {state} at {self.url}>"
