"""Which server the notebooks talk to: recorded streams (the default) or a live API.

``streamscope.client()`` and ``streamscope.async_client()`` return the official SDK's
own ``openai.OpenAI`` / ``openai.AsyncOpenAI``; only their ``base_url`` and key
differ. One explicit switch chooses the server, the ``backend=`` argument or else
the ``STREAMSCOPE_BACKEND`` environment variable:

- ``replay`` (the default): a replay server on 127.0.0.1 answers from the package's
  recordings at their recorded pace. One server is shared by every client; it
  starts in a background thread on first use and stops when Python exits.
- ``openai``: the live OpenAI API; needs ``OPENAI_API_KEY``.
- ``local``: a real model on this CPU, no key, no network: llama.cpp's llama-server in a
  child process on 127.0.0.1, started on first use and stopped when Python exits (see
  ``streamscope.backends.local``; built once by ``make local-install``).
- a base URL, e.g. ``http://localhost:11434/v1`` (Ollama), ``http://localhost:8000/v1``
  (vLLM, llama.cpp server, LM Studio): any OpenAI-compatible server. A URL with no
  path gets ``/v1``. The key is ``OPENAI_API_KEY`` if set, else a placeholder.

Notebooks name the recorded models and prompts literally. On a live backend the client's
transport asks for something else where it must (``substitute.py``): current models for retired
ones on OpenAI, ``STREAMSCOPE_MODEL`` (if set) on any live server, and on ``local`` the local
server's chat or completions model and plainer words for the seed's prompt.

Replay speed comes from ``speed=`` or else ``STREAMSCOPE_SPEED`` (1 = as recorded,
2 = twice as fast, 0 = no waiting); each client sends it to the shared server with
every request. Live backends ignore it.

Nothing is printed when a client is made: a notebook says which backend it uses by
printing ``streamscope.active_backend()``, a one-line banner, where it chooses to.
"""
