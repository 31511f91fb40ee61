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
    "client": "backend",
    "async_client": "backend",
    "active_backend": "backend",
    "last_source": "backend",
    "source_of": "backend",
    "sent_log": "backend",
    "sent_log_line": "backend",
    "model": "backend",
    "prompt": "backend",
    "Recording": "recording",
    "load_recording": "recording",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streamscope' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
