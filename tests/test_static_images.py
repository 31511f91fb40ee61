"""Static images of the charts (streamscope.charts.static), for readers whose front end cannot show widgets.

The images are decoded with matplotlib's own PNG reader and looked at: a chart whose data went
missing would still decode, so the checks look for the streamed curve's colour.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from streamscope import charts
from streamscope.charts import LiveChart, event_order_chart, event_types, field_times_chart, itl_histogram
from streamscope.charts.static import (
    field_times_png,
    histogram_png,
    image_bundle,
    order_png,
    png_size,
    timeline_png,
)
from synthetic_streams import PIECES, chunk_source

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
STREAMED_RGB = (0x63, 0x6E, 0xFA)  # the streamed curve's and the histogram bars' colour
SECOND_RGB = (0xEF, 0x55, 0x3B)  # a second series' colour
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"


def pixels_of(png: bytes, rgb: tuple[int, int, int] = STREAMED_RGB) -> int:
    """How many pixels of the decoded image have the colour ``rgb``."""
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    close = np.all(np.abs(image[..., :3] - np.array(rgb) / 255) < 0.02, axis=-1)
    return int(close.sum())


@pytest.fixture
def displayed(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """What the charts display, in order (raw bundles), instead of sending it to a front end."""
    shown: list[dict] = []
    monkeypatch.setattr("IPython.display.display", lambda bundle, raw=False: shown.append(bundle))
    return shown


def test_timeline_png_draws_the_curve_at_the_given_size():
    png = timeline_png(title="t", offsets=[0.1, 0.2, 0.3], counts=[1, 2, 3], baseline_seconds=0.5)
    assert png_size(png) == (600, 380)
    assert pixels_of(png) > 20


def test_an_empty_timeline_is_still_an_image_without_a_curve():
    png = timeline_png(title="t", offsets=[], counts=[])
    assert png_size(png) == (600, 380)
    assert pixels_of(png) == 0


def test_histogram_png_draws_bars():
    assert pixels_of(histogram_png([1.5, 2.5, 2.7, 40.0], title="gaps")) > 100


def test_image_bundle_says_the_size_it_read_from_the_png():
    png = histogram_png([1.0], title="gaps", size_px=(300, 200))
    bundle = image_bundle(png, "gaps")
    assert base64.b64decode(bundle["image/png"]) == png
    assert bundle["text/plain"] == "gaps [static PNG image, 300x200 px]"
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(b"GIF89a" + bytes(30))


def test_a_displayed_chart_is_followed_by_an_image_of_its_final_state(displayed):
    chart = LiveChart("test", baseline_seconds=1.0, baseline_tokens=len(PIECES))
    widget_bundle = chart._repr_mimebundle_()  # what displaying it in a notebook does
    chart.run(lambda: chunk_source())
    assert len(displayed) == 1
    image = displayed[0]
    assert image["text/plain"] == "test: the chart's final state [static PNG image, 600x380 px]"
    assert pixels_of(base64.b64decode(image["image/png"])) > 20
    assert charts.CSS_STATIC_COPY_FOLLOWS in chart.widget._dom_classes
    assert WIDGET_VIEW_MIME in widget_bundle


def test_a_chart_that_was_not_displayed_shows_no_image(displayed):
    LiveChart("test").run(lambda: chunk_source())
    assert displayed == []


def test_event_types_shows_its_widget_then_its_image(displayed):
    delta = "response.output_text.delta"
    types = ["response.created", delta, delta, "response.completed"]
    chart = event_types([0.1, 0.1, 0.2, 0.3], types)
    chart._ipython_display_()
    widget, image = displayed
    assert widget["text/plain"] == "MeasuredChart('Events by type: 4 events of 3 types')"
    assert len(widget["text/plain"]) < 100  # not the figure's arrays
    assert pixels_of(base64.b64decode(image["image/png"])) > 20


def test_itl_histogram_leaves_out_long_pauses_and_names_them(displayed):
    # The seed's shape: gaps at a 10 ms clock's steps, and two long pauses that would squeeze them.
    gaps = [0.0] * 100 + [0.01] * 150 + [0.02] * 10 + [0.14, 0.73]
    chart = itl_histogram(gaps)
    assert chart.description == "Gaps between chunks: histogram of 262 gaps"
    assert chart.figure.layout.title.text == "Gaps between chunks (not drawn: 140.0, 730.0 ms)"
    assert chart.figure.layout.xaxis.range == (0, 31.0)  # three times the 95th percentile, 10 ms
    assert pixels_of(chart.png) > 100


def test_itl_histogram_shows_its_widget_then_its_image(displayed):
    itl_histogram([0.001, 0.002, 0.0025, 0.04])._ipython_display_()
    widget, image = displayed
    assert WIDGET_VIEW_MIME in widget
    assert widget["text/plain"] == "MeasuredChart('Gaps between chunks: histogram of 4 gaps')"
    assert pixels_of(base64.b64decode(image["image/png"])) > 100


def test_order_png_draws_each_series_against_the_event_number() -> None:
    png = order_png({"reasoning": [1, 5, 9, 9], "answer": [0, 0, 0, 4]}, title="t", unit="characters")
    assert png_size(png) == (600, 360)
    assert pixels_of(png) > 20 and pixels_of(png, SECOND_RGB) > 5


def test_field_times_png_marks_each_field() -> None:
    marks = {"readable": {"a": 0.1, "b": 0.3}, "complete": {"a": 0.3, "b": 0.5}}
    png = field_times_png(marks, title="t", end_seconds=0.5)
    assert pixels_of(png) > 20 and pixels_of(png, SECOND_RGB) > 20


def test_the_order_and_field_charts_show_their_widget_then_their_image(displayed) -> None:
    event_order_chart({"reasoning": [1, 2]}, title="T", unit="characters")._ipython_display_()
    field_times_chart({"readable": {"a": 0.1}}, title="F")._ipython_display_()
    widget, image, field_widget, field_image = displayed
    assert WIDGET_VIEW_MIME in widget and WIDGET_VIEW_MIME in field_widget
    assert widget["text/plain"] == "MeasuredChart('T: characters against event number, 2 events, reasoning')"
    assert pixels_of(base64.b64decode(image["image/png"])) > 5
    assert pixels_of(base64.b64decode(field_image["image/png"])) > 5


NOTEBOOK_NAMES = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))
MAX_TEXT_PLAIN = 2000  # characters: a longer text/plain is a dump, not something to read


def _outputs(notebook: Path) -> list[list[dict]]:
    """The outputs of each code cell."""
    cells = json.loads(notebook.read_text())["cells"]
    return [cell.get("outputs", []) for cell in cells if cell["cell_type"] == "code"]


def test_the_charted_notebooks_are_found():
    charted = [
        name
        for name in NOTEBOOK_NAMES
        if any(
            WIDGET_VIEW_MIME in output.get("data", {})
            for outputs in _outputs(NOTEBOOKS / f"{name}.ipynb")
            for output in outputs
        )
    ]
    assert "01_streaming_chat_completions" in charted, charted


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_each_committed_widget_is_followed_by_a_static_image_that_shows_it(name):
    for outputs in _outputs(NOTEBOOKS / f"{name}.ipynb"):
        for position, output in enumerate(outputs):
            if WIDGET_VIEW_MIME not in output.get("data", {}):
                continue
            image = next(
                (later["data"] for later in outputs[position + 1 :] if "image/png" in later.get("data", {})),
                None,
            )
            assert image is not None, f"{name}: a widget output is not followed by its static image"
            png = base64.b64decode(image["image/png"])
            assert png_size(png)[0] >= 300
            assert pixels_of(png) > 20, f"{name}: the static image shows no curve or bars"


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_no_saved_text_plain_is_a_dump(name):
    for outputs in _outputs(NOTEBOOKS / f"{name}.ipynb"):
        for output in outputs:
            text = output.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            assert len(text) <= MAX_TEXT_PLAIN, f"{name}: a text/plain output of {len(text)} characters"
