"""Charts for the dashboard, drawn on the server as inline SVG (no chart library, no script):
stacked columns per day, horizontal bars, and a ring for a rate."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

PALETTE = {
    "web": "#2f6fdb",
    "email": "#7a4fd1",
    "phone": "#1c9a6b",
    "service": "#e0851f",
    "sales": "#c8417a",
    "marketing": "#d9b500",
    "erp": "#5a6b7d",
    "chat": "#18a3b8",
    "social": "#8a6d3b",
    "import": "#9aa5b1",
}
FALLBACK = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1")


def colour(name: str) -> str:
    """A stable colour per series name (the channel palette, else one derived from the name)."""
    return PALETTE.get(name) or FALLBACK[sum(map(ord, name)) % len(FALLBACK)]


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (axis maximum)."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    while step > value:
        step /= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return step * 10


def _svg(width: int, height: int, label: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="xMinYMin meet" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>'
        + "".join(body)
        + "</svg>"
    )


def stacked_columns(
    label: str, columns: Sequence[str], series: Mapping[str, Sequence[int]], width: int = 1100
) -> Markup:
    """One column per entry of `columns` (days), stacked by series (channels), with an axis."""
    height, left, bottom, top = 240, 40, 28, 10
    plot_w, plot_h = width - left - 8, height - bottom - top
    totals = [sum(values[i] for values in series.values()) for i in range(len(columns))]
    peak = _nice_ceiling(max(totals, default=0))
    body: list[str] = []
    steps = 5 if f"{peak:g}"[0] == "5" else 4  # whole-number ticks: 0 10 … 50, 0 5 … 20
    for tick in range(steps + 1):
        value = peak * tick / steps
        y = top + plot_h - plot_h * tick / steps
        body.append(
            f'<line class="grid" x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{value:g}</text>"
        )
    slot = plot_w / max(1, len(columns))
    bar = max(1.0, slot * 0.78)
    every = max(1, round(len(columns) / 8))
    for i, column in enumerate(columns):
        x = left + i * slot + (slot - bar) / 2
        y = top + plot_h
        for name, values in series.items():
            if not values[i]:
                continue
            h = plot_h * values[i] / peak
            y -= h
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour(name)}"><title>{escape(column)} · {escape(name)}: '
                f"{values[i]}</title></rect>"
            )
        if i % every == 0:
            body.append(
                f'<text class="tick" x="{x + bar / 2:.1f}" y="{height - 10}" '
                f'text-anchor="middle">{escape(short_day(column))}</text>'
            )
    return _svg(width, height, label, body)


@dataclass(frozen=True)
class Bar:
    """One bar of a horizontal bar chart: its label, value, and an optional second marker."""

    label: str
    value: float | None
    marker: float | None = None  # drawn as a tick (e.g. the p90 beside a median)
    fill: str = "#2f6fdb"


def horizontal_bars(
    label: str, bars: Sequence[Bar], show: Callable[[float], str], width: int = 520
) -> Markup:
    """Bars left to right with their values written beside them; None reads as 'no data'."""
    row, left, right = 34, 130, 150
    height = max(1, len(bars)) * row + 8
    peak = _nice_ceiling(
        max([v for b in bars for v in (b.value, b.marker) if v is not None], default=0)
    )
    span = width - left - right
    body: list[str] = []
    for i, item in enumerate(bars):
        y = 6 + i * row
        body.append(
            f'<text class="label" x="{left - 8}" y="{y + 17}" text-anchor="end">'
            f"{escape(item.label)}</text>"
            f'<rect class="track" x="{left}" y="{y + 4}" width="{span}" height="18" rx="3"/>'
        )
        if item.value is None:
            body.append(f'<text class="value" x="{left + 6}" y="{y + 17}">no data</text>')
            continue
        w = max(2.0, span * item.value / peak)
        text = show(item.value)
        if item.marker is not None:
            mx = left + span * item.marker / peak
            body.append(
                f'<line class="marker" x1="{mx:.1f}" x2="{mx:.1f}" y1="{y + 1}" y2="{y + 25}"/>'
            )
            text += f" (p90 {show(item.marker)})"
        body.append(
            f'<rect x="{left}" y="{y + 4}" width="{w:.1f}" height="18" rx="3" '
            f'fill="{item.fill}"/>'
            f'<text class="value" x="{left + span + 6}" y="{y + 17}">{escape(text)}</text>'
        )
    return _svg(width, height, label, body)


def ring(label: str, rate: float | None, caption: str) -> Markup:
    """A ring filled to `rate` (0..1) with the percentage in the middle."""
    size, radius, stroke = 180, 70, 20
    centre = size / 2
    circumference = 2 * 3.14159265 * radius
    shown = "–" if rate is None else f"{rate * 100:.0f}%"
    filled = 0 if rate is None else max(0.0, min(1.0, rate)) * circumference
    tone = "#1c9a6b" if rate is not None and rate < 0.1 else "#e0851f"
    if rate is not None and rate >= 0.25:
        tone = "#d2433b"
    body = [
        f'<circle class="track" cx="{centre}" cy="{centre}" r="{radius}" fill="none" '
        f'stroke-width="{stroke}"/>',
        f'<circle cx="{centre}" cy="{centre}" r="{radius}" fill="none" stroke="{tone}" '
        f'stroke-width="{stroke}" stroke-dasharray="{filled:.1f} {circumference:.1f}" '
        f'transform="rotate(-90 {centre} {centre})" stroke-linecap="butt"/>',
        f'<text class="big" x="{centre}" y="{centre + 4}" text-anchor="middle">{shown}</text>',
        f'<text class="tick" x="{centre}" y="{centre + 26}" text-anchor="middle">'
        f"{escape(caption)}</text>",
    ]
    return _svg(size, size, label, body)


def short_day(iso_day: str) -> str:
    """`2026-11-04` as `4 Nov`."""
    return datetime.fromisoformat(iso_day).strftime("%-d %b")


def duration(seconds: float) -> str:
    """Seconds as a short human duration: 45 min, 5.2 h, 3.1 d."""
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
