"""Unit tests of services/backoffice_gateway/charts.py: valid, accessible SVG whose data
table carries exactly the numbers drawn."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from services.backoffice_gateway import charts as c

SVG = "{http://www.w3.org/2000/svg}"
USD = c.money_formatter("USD")
JPY = c.money_formatter("JPY")


def _parse(chart: c.Chart) -> ET.Element:
    # our own output, not untrusted input: well-formed XML or this raises
    root = ET.fromstring(str(chart.svg))  # noqa: S314
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == chart.title
    labelled = root.get("aria-labelledby", "").split()
    assert title.get("id") in labelled
    assert "style" not in str(chart.svg)  # the CSP forbids inline styles: classes only
    return root


def test_line_chart_with_prior_overlay() -> None:
    labels = ["2026-12-01", "2026-12-02", "2026-12-03"]
    chart = c.line_chart(
        "mrr",
        "MRR trend",
        labels,
        [
            c.Series("This period", "s1", [1000, 1500, 2000]),
            c.Series("Prior period", "s2", [900, 900, None], dashed=True),
        ],
        USD,
    )
    root = _parse(chart)
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 2
    # the prior period is drawn first (behind) and dashed
    assert "dashed" in lines[0].get("class", "")
    assert len(lines[0].get("points", "").split()) == 2  # the missing day is not drawn as 0
    assert len(lines[1].get("points", "").split()) == 3
    assert chart.table.headers == ("Date", "This period", "Prior period")
    assert chart.table.rows[0] == ("2026-12-01", "10.00 USD", "9.00 USD")
    assert chart.table.rows[2] == ("2026-12-03", "20.00 USD", "\u2014")
    desc = root.find(f"{SVG}desc")
    text = desc.text if desc is not None else ""
    assert text and "10.00 USD" in text and "20.00 USD" in text


def test_line_points_are_ordered_and_scaled() -> None:
    chart = c.line_chart("t", "T", ["a", "b", "c"], [c.Series("v", "s1", [0, 50, 100])], USD)
    points = _parse(chart).findall(f"{SVG}polyline")[0].get("points", "").split()
    xs = [float(p.split(",")[0]) for p in points]
    ys = [float(p.split(",")[1]) for p in points]
    assert xs == sorted(xs)
    assert ys[0] > ys[1] > ys[2]  # larger values are higher up (smaller y)
    assert ys[1] == (ys[0] + ys[2]) / 2


def test_cumulative_area_and_negative_values() -> None:
    chart = c.line_chart(
        "rev",
        "Cumulative net revenue",
        ["d1", "d2", "d3"],
        [c.Series("Cumulative", "s1", [-500, 200, 900])],
        JPY,
        area=True,
    )
    root = _parse(chart)
    polygon = root.find(f"{SVG}polygon")
    assert polygon is not None and "area" in polygon.get("class", "")
    axis_text = [t.text for t in root.iter(f"{SVG}text")]
    assert "0 JPY" in axis_text and any(t and t.startswith("-") for t in axis_text)
    assert chart.table.rows[0] == ("d1", "-500 JPY")


def test_bar_chart_heights_proportional() -> None:
    chart = c.bar_chart(
        "growth",
        "New accounts",
        ["d1", "d2", "d3"],
        [0, 2, 4],
        c.count_formatter,
        value_label="New accounts",
    )
    rects = _parse(chart).findall(f"{SVG}rect")
    heights = [float(r.get("height", "0")) for r in rects]
    assert heights[0] == 0 and heights[2] == 2 * heights[1] > 0
    assert all((r.find(f"{SVG}title") is not None) for r in rects)  # a tooltip per bar
    assert chart.table.rows == (("d1", "0"), ("d2", "2"), ("d3", "4"))


def test_plan_distribution_bars_show_shares() -> None:
    chart = c.bar_chart(
        "plans",
        "Plan distribution",
        ["Pro", "Basic", "No plan"],
        [6, 3, 1],
        c.count_formatter,
        value_label="Accounts",
        horizontal=True,
    )
    root = _parse(chart)
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert "Pro" in texts and "6 (60%)" in texts and "1 (10%)" in texts
    widths = [float(r.get("width", "0")) for r in root.findall(f"{SVG}rect")]
    assert widths[0] == 2 * widths[1]
    assert chart.table.headers == ("Plan", "Accounts")


def test_stacked_movements_gains_up_losses_down() -> None:
    chart = c.stacked_movements(
        "mv",
        "MRR movements",
        [
            ("This period", {"new": 3000, "expansion": 1000, "churn": -2000, "contraction": -500}),
            ("Prior period", {"new": 1000}),
        ],
        USD,
    )
    root = _parse(chart)
    zero = root.find(f"{SVG}line[@class='zero']")
    assert zero is not None
    zero_y = float(zero.get("y1", "0"))
    for rect in root.findall(f"{SVG}rect"):
        cls = rect.get("class", "")
        top = float(rect.get("y", "0"))
        bottom = top + float(rect.get("height", "0"))
        if "mv-churn" in cls or "mv-contraction" in cls:
            assert top >= zero_y - 0.11
        else:
            assert bottom <= zero_y + 0.11
    rows = {row[0]: row[1:] for row in chart.table.rows}
    assert rows["net"] == ("15.00 USD", "10.00 USD")
    assert rows["reactivation"] == ("0.00 USD", "0.00 USD")


def test_text_is_escaped() -> None:
    chart = c.bar_chart("x", "<b>&", ["<script>"], [1], c.count_formatter, horizontal=True)
    svg = str(chart.svg)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    _parse(chart)


def test_empty_data_is_still_a_valid_chart() -> None:
    for chart in (
        c.line_chart("e", "Empty", [], [c.Series("v", "s1", [])], USD),
        c.bar_chart("e", "Empty", [], [], c.count_formatter),
        c.bar_chart("e", "Empty", [], [], c.count_formatter, horizontal=True),
        c.stacked_movements("e", "Empty", [], USD),
    ):
        _parse(chart)
    assert c.line_chart("e", "Empty", [], [c.Series("v", "s1", [])], USD).empty


def test_nice_ceiling() -> None:
    assert [c.nice_ceiling(v) for v in (0, 0.3, 1, 3, 7, 11, 240, 260, 9999)] == [
        1,
        1,
        1,
        5,
        10,
        20,
        250,
        500,
        10000,
    ]
    assert re.fullmatch(r"\d+", str(c.nice_ceiling(123456789)))
