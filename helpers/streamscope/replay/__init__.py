"""The replay server: an OpenAI-compatible HTTP server that answers from recordings.

It serves ``POST /v1/chat/completions``, ``/v1/completions`` and ``/v1/responses`` on
loopback, so the official SDK (or curl, or any client) can be pointed at it with
``base_url``. Each request is answered by the recording that matches it, at the
recorded pace.

Which recording answers a request: the one whose path and request are the same request
as the API reads them (``matching.request_form``: numbers as JSON numbers, defaults as
absent, a string content as its one-part list, the fields that cannot change the output
left out; the README's table). Failing that, a streamed request asking for
``stream_options.include_usage`` is answered by the recording made without it, unchanged
(no usage chunk is made up), with the header ``x-streamscope-note`` saying so: the answer
of a server that ignores the option. ``python -m streamscope list`` shows what is recorded;
a 404 names the closest recording and the fields in which it differs.

Pace: a streamed recording's events go out at their recorded offsets (``event.t``)
measured from the request's arrival, divided by the speed factor (1 = as recorded,
2 = twice as fast, 0 = no waiting); events due at the same moment go out in one
write. A non-streamed recording's body goes out after its ``elapsed`` time. A
client may choose its own speed per request with the ``X-Streamscope-Speed``
header (``streamscope.client(speed=...)`` does this).

Timing: an event is written about 0.2 ms after its due time, its write included, on a
quiet machine (benchmarks/replay.py; a busy one adds its own delays). The server runs on
asyncio's epoll loop, which watches any number of connections (``select()`` takes no
descriptor numbered 1024 or more: a thousand idle connections would end the server) but
whose waits are whole milliseconds; the loop waits instead in ``select()`` on the epoll
descriptor alone, to the microsecond (``server._PreciseSelector``). One timer serves
every stream's waits (``sending._Deadlines``): it wakes 0.6 ms before the next due time,
to absorb the machine's own wake-up delay, spins, and releases the waits due together in
the order they were asked for, so each stream keeps its place. The schedule starts when
the request's head arrived, dated when the loop learned of it (by the protocol), not
when it was parsed or its handler got to run. Each write goes straight out: h11 hands
every body chunk to the transport as it is sent, and asyncio sets TCP_NODELAY on the
accepted connections (see ``_bind``). uvicorn's httptools protocol measured no better
here (on a busy machine), and would add a compiled dependency.

Resuming: ``GET /v1/responses/{id}?stream=true&starting_after=N`` (the SDK's
``client.responses.retrieve(id, stream=True, starting_after=N)``) answers for a streamed
Responses recording whose request asked for ``background: true``, found by the response id in
its events: the events recorded after the one numbered N (all of them without
``starting_after``), byte for byte, ``sequence_number`` as recorded, each at its recorded
offset from event N. A bad ``starting_after`` (not a whole number, negative, past the last
event) is a 400, an unknown id a 404 (``resume.py``).

A recording without per-chunk timing (``per_chunk_timing: false``: every ``t`` is 0) is sent
at once, at any speed: no delay is invented for it.

Errors (unknown request, malformed JSON, wrong path or method) come back as
OpenAI-shaped JSON, ``{"error": {"message", "type", "param", "code"}}``, whose
message says what was asked and how to list the recordings or go live.

Hostile input. The server runs inside the notebook kernel (``streamscope.client()``),
so any program on the machine, or a web page in the user's browser, must not be able
to knock it over:

- a body over ``MAX_BODY_BYTES`` (4 MiB) is a 413, read to its end and dropped piece by
  piece (memory stays flat; the client, still sending, reads the 413); a request whose
  head does not arrive within ``request_timeout`` (10 s) of its first byte, or whose
  body does not follow within as long, is a 408 and the connection closes;
- a body costly to read (over 64 KiB, or of many values), and any request no recording
  answers (the 404 compares it with every recording), is read and matched in a worker
  process (``replay.worker``), so that no request holds the loop that paces the streams;
- every body that is not a JSON object is a 400 saying why (not JSON, not UTF-8,
  nested too deeply, an integer over Python's 4300 digits, a lone surrogate);
  malformed HTTP is a 400 in the same shape; an error message quotes at most 80
  characters of anything the client sent and stays under 2000;
- only ``content-type: application/json`` (415 otherwise: a page can POST
  ``text/plain`` without asking the browser's permission), and only ``Host`` values
  that name a loopback address or the address the request came in on (421 otherwise:
  DNS rebinding);
- a recording file that cannot be used (half-written, a field ``recording_schema`` refuses,
  or with the name of, or answering the same request as, another file) is skipped and reported once on
  stderr, at start and when it appears; the others are answered as usual, and a 404
  mentions the skipped files.

Faults on request, for teaching what a client must survive: the header
``x-streamscope-fault`` (see ``Fault``) cuts a streamed reply after event N
(``cut-after=N``: the connection drops, no last chunk, no ``[DONE]``), sends an error
event after event N (``error-after=N``), or stalls S seconds after event N
(``stall=S, stall-after=N``). A recording marked ``incomplete`` (the recorder keeps
streams that ended early) is replayed as it ended: if its connection broke, the
replay breaks it at the same point.

The sent log: every answer from a recording carries ``x-streamscope-request: ID`` and
has a line in ``GET /streamscope/sent`` (or ``ReplayServer.sent``): the recording,
the fault asked for, events and bytes written so far, when the last write went out,
each event's due and sent time (``due_s``, ``sent_s``: the charts' lag clause reads them),
and how it ended (``complete``, ``client disconnected``, ``cut (fault)``, ``error sent
(fault)``, ``dropped as recorded``). A client that stops reading and closes the stream
shows up as ``client disconnected`` with fewer events sent than recorded: the server
stopped sending.
"""

from . import app, contract, index, server
from .app import *  # noqa: F403
from .contract import *  # noqa: F403
from .index import *  # noqa: F403
from .server import *  # noqa: F403

# The package's face: each submodule's (its ``__all__``), once.
__all__: list[str] = []
__all__ += app.__all__
__all__ += contract.__all__
__all__ += index.__all__
__all__ += server.__all__
