"""streamscope: learn and measure how streaming LLM completions work.

The heavy parts (the openai SDK, plotly) load on first use, so that importing the
package, or running ``python -m streamscope assemble``, stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access.
_LAZY = {
    "client": "backends.switch",
    "async_client": "backends.switch",
    "active_backend": "backends.switch",
    "last_source": "backends.provenance",
    "source_of": "backends.provenance",
    "sent_log": "backends.provenance",
    "sent_log_line": "backends.provenance",
    "stream_lag": "lag",
    "Recording": "recording",
    "load_recording": "recording",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streamscope' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
