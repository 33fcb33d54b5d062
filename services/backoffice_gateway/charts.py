"""Server-rendered SVG charts, each with a title and the data table behind it.

Why SVG from the server: the back-office must work offline, under a CSP without inline script,
with no third-party files committed, and be readable by a screen reader. An ``<svg
role="img">`` with ``<title>``/``<desc>`` names the chart; the same numbers go into a
:class:`Table` that the template renders under the chart (``<details>``), so nothing is only
visible as pixels. Colours come from CSS classes (``static/app.css``), never inline styles
(the CSP forbids them).

Every builder is pure: plain numbers in (minor units for money, counts otherwise), a
:class:`Chart` out. Money is formatted with :mod:`.formatting` so the table and the axis agree
with the rest of the page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

from .formatting import format_minor

WIDTH = 640
HEIGHT = 220
_PAD_LEFT = 104
_PAD_RIGHT = 12
_PAD_TOP = 14
_PAD_BOTTOM = 30

Formatter = Callable[[int], str]


@dataclass(frozen=True, slots=True)
class Table:
    """The data behind a chart, as the template renders it (already formatted text)."""

    caption: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Chart:
    """An accessible chart: ``svg`` (safe markup) and ``table`` (the same data as text)."""

    chart_id: str
    title: str
    svg: Markup
    table: Table
    legend: tuple[tuple[str, str], ...] = field(default=())  # (css class, label)

    @property
    def empty(self) -> bool:
        """True when there is no data at all (the template then says so in words)."""
        return not self.table.rows


@dataclass(frozen=True, slots=True)
class Series:
    """One line/area: a label, a CSS class and one value per x label (``None``: no point)."""

    label: str
    css: str
    values: Sequence[int | None]
    dashed: bool = False


def money_formatter(currency: str) -> Formatter:
    """Minor units of ``currency`` as text (the axis and the table use the same)."""
    return lambda v: format_minor(v, currency)


def count_formatter(value: int) -> str:
    """A count with thousands grouped."""
    return f"{value:,}"


def nice_ceiling(value: float) -> int:
    """The smallest "round" number (1, 2, 2.5, 5 x 10^k) >= ``value``, so the axis reads well."""
    if value <= 0:
        return 1
    exponent = math.floor(math.log10(value))
    base = 10**exponent
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * base
        if candidate >= value:
            return max(1, math.ceil(candidate))
    return math.ceil(10 * base)  # pragma: no cover - the loop always returns


@dataclass(frozen=True, slots=True)
class _Scale:
    """Maps values to y pixels over [low, high] (low <= 0 <= high)."""

    low: int
    high: int

    @staticmethod
    def of(values: Sequence[int]) -> _Scale:
        top = max([0, *values])
        bottom = min([0, *values])
        high = nice_ceiling(top) if top > 0 else 0
        low = -nice_ceiling(-bottom) if bottom < 0 else 0
        if high == low:
            high = 1
        return _Scale(low, high)

    def y(self, value: float) -> float:
        plot = HEIGHT - _PAD_TOP - _PAD_BOTTOM
        return _PAD_TOP + plot * (self.high - value) / (self.high - self.low)

    def ticks(self) -> list[int]:
        """Zero, the ends, and the middle when it is a whole number."""
        if self.low < 0:
            return [self.low, 0, self.high] if self.high > 0 else [self.low, 0]
        if self.high >= 2 and self.high % 2 == 0:
            return [0, self.high // 2, self.high]
        return [0, self.high]


def _x_positions(count: int) -> list[float]:
    plot = WIDTH - _PAD_LEFT - _PAD_RIGHT
    if count <= 1:
        return [_PAD_LEFT + plot / 2] * count
    return [_PAD_LEFT + plot * i / (count - 1) for i in range(count)]


def _open_svg(chart_id: str, title: str, desc: str) -> list[str]:
    return [
        f'<svg class="chart" id="{escape(chart_id)}-svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>',
    ]


def _axes(scale: _Scale, fmt: Formatter, labels: Sequence[str], xs: Sequence[float]) -> list[str]:
    parts: list[str] = []
    for tick in scale.ticks():
        y = scale.y(tick)
        parts.append(
            f'<line class="grid" x1="{_PAD_LEFT}" x2="{WIDTH - _PAD_RIGHT}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{_PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(tick))}</text>"
        )
    if labels:
        # First, middle and last label only: a 90-day axis stays legible.
        picks = sorted({0, len(labels) // 2, len(labels) - 1})
        for i in picks:
            anchor = "middle"
            if len(labels) > 1 and i == 0:
                anchor = "start"
            elif len(labels) > 1 and i == len(labels) - 1:
                anchor = "end"
            parts.append(
                f'<text class="axis" x="{xs[i]:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">'
                f"{escape(labels[i])}</text>"
            )
    return parts


def _points(values: Sequence[int | None], xs: Sequence[float], scale: _Scale) -> list[str]:
    return [f"{x:.1f},{scale.y(v):.1f}" for x, v in zip(xs, values, strict=False) if v is not None]


def _table(caption: str, labels: Sequence[str], series: Sequence[Series], fmt: Formatter) -> Table:
    rows = tuple(
        (label, *(_cell(s.values, i, fmt) for s in series)) for i, label in enumerate(labels)
    )
    return Table(caption, ("Date", *(s.label for s in series)), rows)


def _cell(values: Sequence[int | None], index: int, fmt: Formatter) -> str:
    value = values[index] if index < len(values) else None
    return "\u2014" if value is None else fmt(value)


def line_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Formatter,
    *,
    area: bool = False,
) -> Chart:
    """Lines over ``labels`` (dates). The first series is the current period; a series marked
    ``dashed`` (the prior period, aligned day by day) is drawn behind it. ``area`` fills the
    first series down to zero (cumulative revenue)."""
    values = [v for s in series for v in s.values if v is not None]
    scale = _Scale.of(values)
    xs = _x_positions(len(labels))
    desc = f"{title}: " + "; ".join(
        f"{s.label} from {fmt(first)} to {fmt(last)}"
        for s in series
        if (first := next((v for v in s.values if v is not None), None)) is not None
        and (last := next((v for v in reversed(s.values) if v is not None), None)) is not None
    )
    parts = _open_svg(chart_id, title, desc or f"{title}: no data")
    parts += _axes(scale, fmt, labels, xs)
    for s in sorted(series, key=lambda item: not item.dashed):  # dashed (prior) first, behind
        pts = _points(s.values, xs, scale)
        if not pts:
            continue
        if area and not s.dashed and len(pts) > 1:
            base = f"{scale.y(0):.1f}"
            first_x, last_x = pts[0].split(",")[0], pts[-1].split(",")[0]
            parts.append(
                f'<polygon class="area {escape(s.css)}" '
                f'points="{first_x},{base} {" ".join(pts)} {last_x},{base}"/>'
            )
        dash = " dashed" if s.dashed else ""
        if len(pts) == 1:
            x, y = pts[0].split(",")
            parts.append(f'<circle class="dot {escape(s.css)}" cx="{x}" cy="{y}" r="3"/>')
        else:
            parts.append(f'<polyline class="line {escape(s.css)}{dash}" points="{" ".join(pts)}"/>')
    parts.append("</svg>")
    return Chart(
        chart_id,
        title,
        Markup("".join(parts)),  # noqa: S704 - every interpolated text above is escaped
        _table(title, labels, series, fmt),
        tuple((s.css + (" dashed" if s.dashed else ""), s.label) for s in series),
    )


def bar_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[int],
    fmt: Formatter,
    *,
    value_label: str = "Value",
    css: str = "s1",
    horizontal: bool = False,
) -> Chart:
    """One bar per label (account growth per day; plan distribution with ``horizontal``)."""
    if horizontal:
        return _horizontal_bars(chart_id, title, labels, values, fmt, value_label, css)
    scale = _Scale.of(values)
    xs = _x_positions(len(labels))
    plot = WIDTH - _PAD_LEFT - _PAD_RIGHT
    width = max(1.0, plot / max(1, len(labels)) * 0.7)
    desc = f"{title}: total {fmt(sum(values))} over {len(values)} days" if values else "no data"
    parts = _open_svg(chart_id, title, desc)
    parts += _axes(scale, fmt, labels, xs)
    zero = scale.y(0)
    for x, label, value in zip(xs, labels, values, strict=True):
        y = scale.y(value)
        top, height = min(y, zero), abs(zero - y)
        parts.append(
            f'<rect class="bar {escape(css)}" x="{x - width / 2:.1f}" y="{top:.1f}" '
            f'width="{width:.1f}" height="{height:.1f}"><title>{escape(label)}: '
            f"{escape(fmt(value))}</title></rect>"
        )
    parts.append("</svg>")
    rows = tuple((label, fmt(value)) for label, value in zip(labels, values, strict=True))
    return Chart(
        chart_id,
        title,
        Markup("".join(parts)),  # noqa: S704 - escaped above
        Table(title, ("Date", value_label), rows),
        ((css, value_label),),
    )


def _horizontal_bars(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[int],
    fmt: Formatter,
    value_label: str,
    css: str,
) -> Chart:
    row_height = 26
    height = max(40, row_height * len(labels) + 10)
    top = max([1, *values])
    label_width = 210
    plot = WIDTH - label_width - 90
    total = sum(values)
    desc = (
        f"{title}: "
        + "; ".join(f"{label} {fmt(value)}" for label, value in zip(labels, values, strict=True))
        if labels
        else f"{title}: no data"
    )
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}-svg" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>',
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 6 + i * row_height
        width = plot * max(0, value) / top
        share = f" ({value * 100 / total:.0f}%)" if total > 0 else ""
        parts.append(
            f'<text class="axis" x="{label_width - 8}" y="{y + 15}" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect class="bar {escape(css)} c{i % 6}" x="{label_width}" y="{y}" '
            f'width="{width:.1f}" height="{row_height - 8}"/>'
            f'<text class="axis" x="{label_width + width + 6:.1f}" y="{y + 15}">'
            f"{escape(fmt(value))}{escape(share)}</text>"
        )
    parts.append("</svg>")
    rows = tuple((label, fmt(value)) for label, value in zip(labels, values, strict=True))
    return Chart(
        chart_id,
        title,
        Markup("".join(parts)),  # noqa: S704 - escaped above
        Table(title, ("Plan", value_label), rows),
    )


#: MRR movement categories in the order Stripe-like dashboards stack them.
MOVEMENT_CATEGORIES = ("new", "expansion", "reactivation", "contraction", "churn")


def stacked_movements(
    chart_id: str,
    title: str,
    columns: Sequence[tuple[str, dict[str, int]]],
    fmt: Formatter,
) -> Chart:
    """Stacked bars of MRR movements: one column per period (``("This period", {"new": 1200,
    "churn": -300, ...})``). Gains stack upward from zero, losses downward, and a net marker
    shows where the column ends up."""
    ups = [sum(max(0, c.get(k, 0)) for k in MOVEMENT_CATEGORIES) for _, c in columns]
    downs = [sum(min(0, c.get(k, 0)) for k in MOVEMENT_CATEGORIES) for _, c in columns]
    scale = _Scale.of([*ups, *downs])
    plot = WIDTH - _PAD_LEFT - _PAD_RIGHT
    slot = plot / max(1, len(columns))
    width = min(120.0, slot * 0.5)
    nets = {name: sum(c.get(k, 0) for k in MOVEMENT_CATEGORIES) for name, c in columns}
    desc = f"{title}: " + "; ".join(f"{name} net {fmt(net)}" for name, net in nets.items())
    parts = _open_svg(chart_id, title, desc)
    parts += _axes(scale, fmt, [], [])
    for i, (name, values) in enumerate(columns):
        x = _PAD_LEFT + slot * i + (slot - width) / 2
        up, down = 0, 0
        for category in MOVEMENT_CATEGORIES:
            value = values.get(category, 0)
            if value == 0:
                continue
            if value > 0:
                y0, y1 = scale.y(up), scale.y(up + value)
                up += value
            else:
                y0, y1 = scale.y(down + value), scale.y(down)
                down += value
            parts.append(
                f'<rect class="bar mv-{category}" x="{x:.1f}" y="{min(y0, y1):.1f}" '
                f'width="{width:.1f}" height="{abs(y0 - y1):.1f}"><title>{escape(name)} '
                f"{category}: {escape(fmt(value))}</title></rect>"
            )
        net_y = scale.y(nets[name])
        parts.append(
            f'<line class="net" x1="{x - 6:.1f}" x2="{x + width + 6:.1f}" '
            f'y1="{net_y:.1f}" y2="{net_y:.1f}"/>'
            f'<text class="axis" x="{x + width / 2:.1f}" y="{HEIGHT - 8}" '
            f'text-anchor="middle">{escape(name)}</text>'
        )
    zero = scale.y(0)
    parts.append(
        f'<line class="zero" x1="{_PAD_LEFT}" x2="{WIDTH - _PAD_RIGHT}" '
        f'y1="{zero:.1f}" y2="{zero:.1f}"/>'
    )
    parts.append("</svg>")
    rows = (
        *(
            (category, *(fmt(values.get(category, 0)) for _, values in columns))
            for category in MOVEMENT_CATEGORIES
        ),
        ("net", *(fmt(nets[name]) for name, _ in columns)),
    )
    return Chart(
        chart_id,
        title,
        Markup("".join(parts)),  # noqa: S704 - escaped above
        Table(title, ("Movement", *(name for name, _ in columns)), rows),
        tuple((f"mv-{c}", c) for c in MOVEMENT_CATEGORIES),
    )
