"""Moderating a streamed reply while it arrives.

A non-streamed reply can be checked once, whole, before anyone sees it. A streamed
one reaches the reader piece by piece, so a check must run on partial output. Two
things follow, and this module makes both visible:

* Checking each chunk on its own misses anything that spans chunks (a phrase, or a
  word split into tokens); the usual pattern checks the *accumulated* text.
* Checking after every chunk costs one moderation call per token, so production
  code checks every N chunks or at sentence ends, and stops the stream (closing
  the HTTP response) as soon as a check trips.

Checkers are callables ``text -> Verdict``: ``OpenAIModeration`` calls the real
moderation endpoint (live backends); ``PhraseChecker`` is a deterministic local
stand-in for replay, and says so in its label.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Check",
    "Checker",
    "ModeratedStream",
    "OpenAIModeration",
    "PhraseChecker",
    "Verdict",
    "check_each_piece",
]

_SENTENCE_END = re.compile(r"[.!?]\s*$")


@dataclass(frozen=True)
class Verdict:
    flagged: bool
    reasons: tuple[str, ...] = ()


Checker = Callable[[str], Verdict]


@dataclass(frozen=True)
class PhraseChecker:
    """A local, deterministic stand-in for a moderation model: flags listed phrases.

    It exists so that the replay default can show the *mechanics* of moderating a
    stream with no key and no network; it judges nothing about real content.
    """

    phrases: tuple[str, ...]

    @property
    def label(self) -> str:
        listed = ", ".join(repr(p) for p in self.phrases)
        return f"stand-in checker (local phrase list {listed}), not a moderation model"

    def __call__(self, text: str) -> Verdict:
        found = tuple(p for p in self.phrases if p in text)
        return Verdict(bool(found), found)


@dataclass
class OpenAIModeration:
    """The moderation endpoint of a live backend (``client.moderations.create``)."""

    client: Any
    model: str = "omni-moderation-latest"

    @property
    def label(self) -> str:
        return f"OpenAI moderation endpoint, model {self.model}"

    def __call__(self, text: str) -> Verdict:
        result = self.client.moderations.create(model=self.model, input=text).results[0]
        flagged = [name for name, hit in result.categories.model_dump().items() if hit]
        return Verdict(bool(result.flagged), tuple(flagged))


@dataclass(frozen=True)
class Check:
    """One moderation call: after which chunk, on how much text, and what it said."""

    chunk_index: int
    text_length: int
    verdict: Verdict


@dataclass
class ModeratedStream:
    """Iterates a stream's text pieces, checking the accumulated text as it grows.

    ``every`` checks after every N pieces; ``at_sentence_end`` also checks when
    the text so far ends a sentence. The final text is always checked once more,
    so nothing reaches the reader unchecked at the end. When a check trips, the
    iteration stops and ``on_stop`` (typically ``stream.close``) is called.
    """

    pieces: Iterable[str]
    checker: Checker
    every: int = 10
    at_sentence_end: bool = True
    on_stop: Callable[[], None] | None = None
    text: str = ""
    checks: list[Check] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def flagged(self) -> bool:
        return any(c.verdict.flagged for c in self.checks)

    def _check(self, index: int) -> bool:
        verdict = self.checker(self.text)
        self.checks.append(Check(index, len(self.text), verdict))
        return verdict.flagged

    def __iter__(self) -> Iterator[str]:
        index = -1
        for index, piece in enumerate(self.pieces):
            self.text += piece
            yield piece
            due = (index + 1) % self.every == 0 or (
                self.at_sentence_end and _SENTENCE_END.search(self.text) is not None
            )
            if due and self._check(index):
                self.stopped_early = True
                if self.on_stop is not None:
                    self.on_stop()
                return
        if not self.checks or self.checks[-1].chunk_index != index:
            self._check(index)


def check_each_piece(pieces: Iterable[str], checker: Checker) -> list[Check]:
    """The naive approach, for contrast: each piece checked on its own."""
    return [Check(i, len(p), checker(p)) for i, p in enumerate(pieces)]
