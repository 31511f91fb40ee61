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
from streamscope.charts import LiveChart, itl_histogram
from streamscope.charts.static import histogram_png, image_bundle, png_size, timeline_png
from synthetic_streams import PIECES, chunk_source

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
STREAMED_RGB = (0x63, 0x6E, 0xFA)  # the streamed curve's and the histogram bars' colour
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


def test_itl_histogram_shows_its_widget_then_its_image(displayed):
    itl_histogram([0.001, 0.002, 0.0025, 0.04])._ipython_display_()
    widget, image = displayed
    assert WIDGET_VIEW_MIME in widget
    assert widget["text/plain"] == "MeasuredChart('Gaps between chunks: histogram of 4 gaps')"
    assert pixels_of(base64.b64decode(image["image/png"])) > 100


def _chart_cells(notebook: Path) -> list[list[dict]]:
    """The outputs of each code cell that displays a chart widget."""
    cells = json.loads(notebook.read_text())["cells"]
    return [
        cell["outputs"]
        for cell in cells
        if any(WIDGET_VIEW_MIME in output.get("data", {}) for output in cell.get("outputs", []))
    ]


@pytest.mark.parametrize("name", ["01_streaming_chat_completions", "02_streaming_legacy_completions"])
def test_each_committed_chart_is_followed_by_a_static_image_that_shows_it(name):
    cells = _chart_cells(NOTEBOOKS / f"{name}.ipynb")
    assert cells, f"{name} displays no chart"
    for outputs in cells:
        last = outputs[-1].get("data", {})
        assert "image/png" in last, f"{name}: a chart cell's last output is not an image: {sorted(last)}"
        png = base64.b64decode(last["image/png"])
        assert png_size(png)[0] >= 300
        assert pixels_of(png) > 20, f"{name}: the static image shows no curve or bars"
