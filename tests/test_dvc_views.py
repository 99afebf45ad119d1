"""DVC's own views of a run, as the repository configures them: `dvc plots show`'s page loads
nothing from outside (its vega libraries are in the page), and the templates of the data plots
draw Fig. 5 as the PNG does (one column per eps, each target coloured by its relation to F1).
Checked on the files, without a browser; README.md ("DVC's views") gives the commands."""

from __future__ import annotations

import configparser
import json
import re

from helpers_repo import REPO

from classaware import plots

PLOTS = REPO / ".dvc" / "plots"


def template_path():
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    return REPO / ".dvc" / config["plots"]["html_template"]  # DVC reads it relative to .dvc/


def test_dvc_plots_show_uses_the_offline_page():
    assert template_path() == PLOTS / "offline.html" and template_path().is_file()


def test_the_offline_page_loads_nothing_from_outside_and_carries_vega():
    page = template_path().read_text()
    assert page.count("{plot_divs}") == 1  # where DVC puts the plots
    assert "{scripts}" not in page  # where DVC would put its CDN script tags
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    for library in ("vega 5.20.2", "vega-lite 5.2.0", "vega-embed 6.18.2"):
        assert f"/* {library} */" in page
    assert page.count("<script") == 3 and "vegaEmbed" in page


def test_fig5s_dvc_plot_has_one_column_per_eps_and_the_pngs_colours():
    spec = json.loads((PLOTS / "panels_curves.json").read_text())
    encoding = spec["spec"]["encoding"]
    assert encoding["x"]["type"] == "ordinal"  # each point at its eps; no log axis from 0.1
    assert encoding["x"]["axis"]["labelAngle"] == 0
    colour = encoding["color"]
    assert colour["field"] == "group"
    assert colour["scale"]["domain"] == list(plots.GROUP_COLOURS)
    assert colour["scale"]["range"] == list(plots.GROUP_COLOURS.values())
    dash = encoding["strokeDash"]  # revisions, in `dvc plots diff`: the legend draws the dash, not a dot
    assert dash["field"] == "rev" and dash["legend"]["symbolType"] == "stroke"
    # Vega-Lite compiles the legend of a filled mark with a transparent stroke, whatever symbolStrokeColor
    # says: only the legend's own encode draws the dash (seen in chromium)
    assert dash["legend"]["encode"]["symbols"]["update"]["stroke"] == {"value": "black"}


def test_the_scatter_template_is_vega_lite_with_dvcs_anchors():
    text = (PLOTS / "panels_scatter.json").read_text()
    spec = json.loads(text)
    assert spec["$schema"].endswith("vega-lite/v5.json")
    for anchor in ("<DVC_METRIC_DATA>", "<DVC_METRIC_X>", "<DVC_METRIC_Y>", "<DVC_METRIC_TITLE>"):
        assert anchor in text
