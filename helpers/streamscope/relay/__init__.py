"""The relay every chat page needs: the backend's stream, re-served as SSE to a web page, timed per hop.

``Relay(model=...).start()`` serves, on a free loopback port, a page (``page.html``) and ``POST /chat``,
which relays a chat stream from the active backend (``streamscope.async_client()``) byte for byte,
with heartbeats in its pauses and a last event of its own. ``hops(relay.log.requests[-1])`` gives each
event's time at each hop (upstream server, relay, page); ``table()`` and ``chart()`` show them.

- app.py: the Starlette app (routes, the relaying generator, the request limits);
- server.py: ``Relay``, the app served from a background thread;
- log.py: what the relay did, per request and per event;
- hops.py: the hop times, their summary and chart;
- kernel_client.py: the page's part played from the kernel, where no browser runs;
- jupyter_proxy.py: a Jupyter server with jupyter-server-proxy, to time the hop Binder adds.
"""

from __future__ import annotations

from .app import HEARTBEAT, RELAY_HEADER, SSE_HEADERS, create_app
from .hops import Hops, chart, compare, hops, summary, table
from .jupyter_proxy import JupyterProxy
from .kernel_client import measure, read_in_kernel
from .log import RelayedRequest, RelayLog
from .server import HEARTBEAT_S, Relay

__all__ = [
    "HEARTBEAT",
    "HEARTBEAT_S",
    "RELAY_HEADER",
    "SSE_HEADERS",
    "Hops",
    "JupyterProxy",
    "Relay",
    "RelayLog",
    "RelayedRequest",
    "chart",
    "compare",
    "create_app",
    "hops",
    "measure",
    "read_in_kernel",
    "summary",
    "table",
]
