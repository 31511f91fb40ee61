"""Moderating partial output: what a per-chunk check misses and the accumulated check catches."""

from streamscope.moderation import ModeratedStream, PhraseChecker, check_each_piece

PIECES = ["1", ",", " ", "2", ",", " ", "3", "."]  # how the count-to-100 stream splits "1, 2, 3."
CHECKER = PhraseChecker(("2, 3",))


def test_a_phrase_spanning_chunks_is_invisible_to_per_chunk_checks():
    assert not any(c.verdict.flagged for c in check_each_piece(PIECES, CHECKER))


def test_accumulated_check_stops_the_stream_and_closes_it():
    closed = []
    run = ModeratedStream(PIECES, CHECKER, every=1, on_stop=lambda: closed.append(True))
    shown = list(run)
    assert shown == PIECES[:7]  # stopped right after "3" completed the phrase
    assert run.stopped_early and run.flagged and closed == [True]
    assert run.checks[-1].verdict.reasons == ("2, 3",)


def test_sparse_checks_let_more_through_before_stopping():
    run = ModeratedStream(PIECES, CHECKER, every=4, at_sentence_end=False)
    shown = list(run)
    # Checks after pieces 4 and 8 only: the phrase is complete at piece 7 but caught at 8.
    assert shown == PIECES and run.flagged
    assert [c.chunk_index for c in run.checks] == [3, 7]


def test_sentence_end_triggers_a_check_and_clean_text_passes():
    run = ModeratedStream(["Hello", " world", "."], PhraseChecker(("bad",)), every=100)
    assert "".join(run) == "Hello world."
    assert [c.chunk_index for c in run.checks] == [2] and not run.flagged


def test_stand_in_says_what_it_is():
    assert "stand-in" in CHECKER.label and "not a moderation model" in CHECKER.label
