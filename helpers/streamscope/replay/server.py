"""ReplayServer: the app on uvicorn, in a background thread or in this one, on a loop that keeps time."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import resource
import select
import selectors
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..recording import Recording
from .app import create_app
from .contract import ARRIVAL_KEY, REQUEST_TIMEOUT_S, TRANSPORT_KEY, _error_content, _is_loopback, check_speed
from .index import RecordingIndex
from .sending import _Stats

__all__ = [
    "ReplayServer",
]


class _ReplayProtocol(H11Protocol):
    """uvicorn's h11 protocol, with what the replay server needs from the connection.

    - Each request's scope notes when its head arrived, as the loop learned of it (the
      schedule of a replay starts there: with many requests at once, the last is parsed, and
      its handler starts, milliseconds after it came in) and the connection's transport (to
      drop it mid-stream).
    - A request's head must arrive whole within ``request_timeout`` of its first byte (or
      of the connection's start): a client trickling headers gets a 408 and the connection
      ends. (uvicorn times out only idle keep-alive connections; h11 caps a head at 16 KiB.)
    - A malformed request gets an OpenAI-shaped 400, where uvicorn sends plain text.
    """

    def __init__(self, *args: Any, request_timeout: float = REQUEST_TIMEOUT_S, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_timeout = request_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._received_at: float | None = None  # when the loop learned of the data being received

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self._request_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._head_timer = self.loop.call_later(self._request_timeout, self._head_timed_out)
        self._received_at = _woken_at(self.loop)
        try:
            super().data_received(data)
        finally:
            self._received_at = None

    def handle_events(self) -> None:
        # Called as data arrives, and for a pipelined request when the one before it is answered.
        # Data that arrived is dated when the loop learned of it (its wait returned), not when this
        # connection's turn came: with a hundred requests at once, the last is parsed milliseconds
        # after it arrived, and its stream must not start that much late.
        arrived = self._received_at if self._received_at is not None else self.loop.time()
        previous = self.cycle
        super().handle_events()
        if self.cycle is not None and self.cycle is not previous:
            self._stop_head_timer()
            self.cycle.scope[ARRIVAL_KEY] = arrived  # type: ignore[literal-required]
            self.cycle.scope[TRANSPORT_KEY] = self.transport  # type: ignore[literal-required]

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self._answer_and_close(408, "The request's head did not arrive in time.")

    def send_400_response(self, msg: str) -> None:
        self._answer_and_close(
            400,
            "The replay server cannot read this HTTP request: it is malformed, or its head is over 16 KiB.",
        )

    def _answer_and_close(self, status: int, message: str) -> None:
        body = json.dumps(_error_content(message, "invalid_request_error", None)).encode()
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


class _PreciseSelector(selectors.DefaultSelector):
    """The platform's best selector (epoll on Linux), whose waits end to the microsecond.

    epoll watches any number of connections (``select()`` takes no descriptor numbered 1024 or
    more), but its wait is whole milliseconds (CPython rounds a timeout up), so a stream's event
    due in 2.3 ms went out at 3 ms. The loop's wait is made with ``select()`` on the epoll
    descriptor itself, which is readable as soon as any connection it watches is and whose
    timeout is in microseconds; epoll then reports, without waiting, what is ready (so the spin
    before each due time, ``sending._WAKE_LEAD_S``, covers only the machine's own wake-up delay).
    If the epoll descriptor is itself numbered past ``select()``'s limit, waits are rounded up, as
    plain epoll's.
    """

    _select_can_wait = True

    def __init__(self) -> None:
        super().__init__()
        self.woken_at: float | None = None  # time.monotonic() when the latest wait returned

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0 and self._select_can_wait:
            try:
                select.select([self.fileno()], [], [], timeout)
                timeout = 0
            except (ValueError, AttributeError):  # past select()'s limit; a selector without a descriptor
                self._select_can_wait = False
        ready = super().select(timeout)
        self.woken_at = time.monotonic()  # the loop's clock
        return ready


# Each loop made by _precise_loop, with its selector.
_selectors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _PreciseSelector]
_selectors = weakref.WeakKeyDictionary()


def _woken_at(loop: asyncio.AbstractEventLoop) -> float | None:
    """When the loop's latest wait returned (it runs on a ``_PreciseSelector``), else None."""
    selector = _selectors.get(loop)
    return selector.woken_at if selector is not None else None


def _precise_loop() -> asyncio.AbstractEventLoop:
    selector = _PreciseSelector()
    loop = asyncio.SelectorEventLoop(selector)
    _selectors[loop] = selector
    return loop


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Naming the protocol matters: asyncio sets TCP_NODELAY only on accepted sockets whose proto is
    # IPPROTO_TCP, and without it Nagle holds a response's body behind its headers until the
    # client's delayed ACK (about 40 ms on a reused connection).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    # Listening now lets clients connect (queued) before the server's loop starts; the backlog is
    # uvicorn's own default.
    sock.listen(2048)
    return sock


class ReplayServer:
    """A replay server running in a background thread: ``ReplayServer().start()``.

    ``recordings`` is a folder (default: the package's recordings) or a list of
    ``Recording`` objects. Use ``.base_url`` as the SDK's ``base_url``; ``.stop()``
    or a ``with`` block shuts it down. In a thread, the server shares the GIL with
    the host process, whose own work can delay an event; ``python -m streamscope
    serve`` runs it in a process of its own.
    """

    def __init__(
        self,
        speed: float = 1.0,
        recordings: str | Path | Iterable[Recording] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        request_timeout: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.speed = check_speed(speed)
        self.index = RecordingIndex(recordings)
        self.host, self.port = host, port
        self.request_timeout = request_timeout
        self.stats = _Stats()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._app: Starlette | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def active_streams(self) -> int:
        """How many streamed responses are being sent right now."""
        return self.stats.active_streams

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The sent log: per request answered from a recording, what went out (``GET /streamscope/sent``)."""
        return self.stats.sent_log()

    def sent_line(self, request_id: int | None = None) -> dict[str, Any] | None:
        """The sent log's line for request ``request_id`` (default: the latest request answered)."""
        lines = list(self.stats.sent)
        if request_id is not None:
            lines = [line for line in lines if line.request == request_id]
        return lines[-1].snapshot() if lines else None

    def recording(self, name: str) -> Recording | None:
        """The recording of that name, if the server still answers from it."""
        return next((rec for rec in self.index.recordings() if rec.name == name), None)

    def _uvicorn(self) -> uvicorn.Server:
        self._app = create_app(self.index, self.speed, self.stats, request_timeout=self.request_timeout)
        config = uvicorn.Config(
            self._app,
            http=functools.partial(_ReplayProtocol, request_timeout=self.request_timeout),  # type: ignore[arg-type]
            lifespan="off",
            log_config=None,  # leave the host process's logging alone
            log_level="warning",
            access_log=False,
            # A recording's own server and date headers are sent as recorded, not after uvicorn's.
            server_header=False,
            date_header=False,
            # A stream still running at shutdown is cancelled after this long.
            timeout_graceful_shutdown=1,
        )
        worker = self._app.state.worker

        def stop_workers() -> None:
            worker.close()
            self.index.close()

        return _Server(config, on_shutdown=stop_workers)

    def listen(self) -> ReplayServer:
        """Bind the address now; with port 0 a free one, which ``base_url`` then names.

        Clients can connect (they wait in the queue) before the server starts serving.
        """
        if self._socket is None:
            self._socket = _bind(self.host, self.port)
            self.port = self._socket.getsockname()[1]
        return self

    def start(self) -> ReplayServer:
        """Serve in a background thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError("this ReplayServer is already started")
        sock = self._take_socket()
        self._server = server = self._uvicorn()
        self._thread = threading.Thread(
            target=_run, args=(server, sock, self.index), name=f"streamscope-replay-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def serve(self) -> None:
        """Serve in this thread until Ctrl-C (``python -m streamscope serve``)."""
        sock = self._take_socket()
        with contextlib.suppress(KeyboardInterrupt):
            _run(self._uvicorn(), sock, self.index)

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach the server."""
        return _is_loopback(self.host)

    def _take_socket(self) -> socket.socket:
        sock = self.listen()._socket
        assert sock is not None
        self._socket = None
        return sock

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._thread is not None else "stopped"
        return f"<ReplayServer {state} at {self.base_url}, speed {self.speed:g}>"


class _Server(uvicorn.Server):
    """uvicorn's server, which also stops the worker processes (bodies, large recording files) when it
    shuts down: before uvicorn raises again the signal that stopped it (SIGTERM then ends the process
    at once)."""

    def __init__(self, config: uvicorn.Config, *, on_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().shutdown(sockets)
        finally:
            self._on_shutdown()


def _allow_descriptors() -> None:
    """Raise this process's soft limit on open files to its hard limit, as libuv (Node) does at start:
    every connection is a descriptor, and the soft limit is often 1024 where the hard one is far higher."""
    with contextlib.suppress(ValueError, OSError):  # some systems refuse a soft limit that high
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = max(soft, 1 << 20)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _out_of_descriptors_said_once() -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """The loop's error handler: no descriptor left for a new connection is said once, in one line.

    asyncio logs it as a traceback, once per connection waiting (tens of thousands of lines); the
    connection waits in the listen queue and is taken when a descriptor is free again.
    """
    said = False

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        nonlocal said
        error = context.get("exception")
        if not (isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE)):
            loop.default_exception_handler(context)
            return
        if not said:
            said = True
            limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            print(
                f"streamscope replay server: every file descriptor is in use ({limit}, the open-file limit); "
                "new connections wait until others close (`ulimit -n` raises the limit)",
                file=sys.stderr,
                flush=True,
            )

    return handle


def _run(server: uvicorn.Server, sock: socket.socket, index: RecordingIndex) -> None:
    index.loop_thread = threading.get_ident()  # this thread's loop never waits for a folder's reading

    async def serve() -> None:
        asyncio.get_running_loop().set_exception_handler(_out_of_descriptors_said_once())
        # Starlette streams through anyio, whose asyncio backend loads on first use: load it now
        # rather than adding ~50 ms to the first request's time to first chunk.
        async with anyio.create_task_group():
            pass
        await server.serve(sockets=[sock])

    _allow_descriptors()
    with asyncio.Runner(loop_factory=_precise_loop) as runner:
        runner.run(serve())
