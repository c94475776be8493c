"""The HTML writer: escaping, embedded PNGs, and the self-check script."""

from __future__ import annotations

import base64
import re

import pytest

from gnc.report import html as H
from gnc.report.figures import figure_png
from gnc.report.plots_codes import plot_code_values, plot_sphere_code


def test_table_escapes_and_formats() -> None:
    text = H.render_table(["<a>", "b"], [["x&y", 0.123456], [None, True]], caption="c<")
    assert "&lt;a&gt;" in text and "x&amp;y" in text and "c&lt;" in text
    assert "<td>0.1235</td>" in text and "<td>-</td>" in text and "<td>yes</td>" in text


def test_figure_embeds_png_roundtrip() -> None:
    fig, _ = plot_code_values(
        [{"label": "(10,100)", "paper": 0.614, "ours": 0.66, "rho_star_upper": 1.01}]
    )
    png = figure_png(fig)
    html = H.render_figure(png, "cap")
    (payload,) = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert base64.b64decode(payload) == png
    with pytest.raises(ValueError, match="Expected PNG"):
        H.render_figure(b"GIF89a", "x")


def test_sphere_plot_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"\(K, 3\)"):
        plot_sphere_code([[1.0, 0.0]])


def test_page_has_self_check_and_sections() -> None:
    page = H.render_page(
        "T",
        [H.render_section("s", "S", "ok", ["<p>x</p>"])],
        toc=[("s", "S")],
        meta=[("profile", "quick")],
    )
    assert "naturalWidth" in page and 'href="#s"' in page and "profile: quick" in page
