"""Small self-contained SVG charts for the run report: line, stacked area, bar, histogram.

Each function returns one `<svg class="plot">` element as a string (valid XML, no external
assets, no scripts) with a title, axes, ticks and a legend. Values may be None (missing or NaN):
lines break there and stacked layers count them as 0. Text is escaped here; callers pass plain
strings. The charts are for reading a run at a glance, not for publication: linear axes only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Okabe–Ito: distinguishable for colour-blind readers, in the order series are usually drawn.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
WIDTH, HEIGHT = 540, 280  # two charts side by side on a ~1100-px page
CHAR_W = 6.3  # approximate width of one 11-px legend character, for legend columns
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 62, 20, 34, 44
LEGEND_ROW = 18  # pixels per legend row, drawn under the x axis label


@dataclass(frozen=True)
class Series:
    """One line: y values over x values (None = no value), drawn dashed when `dashed`."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    color: str | None = None
    dashed: bool = False


def finite(v: object) -> float | None:
    """The value as a float, or None when it is missing, not a number, NaN or infinite."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 × 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    raw = (hi - lo) / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step + 1e-9) * step
    ticks: list[float] = []
    t = first
    while t <= hi + step * 0.5 and len(ticks) < 50:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi - 1e-12:
        ticks.append(round(t, 12))
    return ticks


def fmt_num(v: float) -> str:
    """Short tick label: 0.25, 12, 1.5k, 2M."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    if a == 0 or a >= 1:
        return f"{v:.4g}"
    return f"{v:.3g}"


class _Frame:
    """Pixel mapping and the common parts (title, grid, axes, legend) of one chart."""

    def __init__(
        self, title: str, x_ticks: list[float], y_ticks: list[float], legend: Sequence[str],
        x_label: str, y_label: str, width: int = WIDTH, height: int = HEIGHT,
    ) -> None:  # fmt: skip
        self.title, self.x_label, self.y_label = title, x_label, y_label
        self.x_ticks, self.y_ticks = x_ticks, y_ticks
        self.x0, self.x1 = x_ticks[0], x_ticks[-1]
        self.y0, self.y1 = y_ticks[0], y_ticks[-1]
        self.left, self.right = MARGIN_L, width - MARGIN_R
        widest = max((len(name) for name in legend), default=0) * CHAR_W + 40  # swatch + gap
        self.legend_cols = max(1, min(4, int((self.right - self.left) // widest)))
        self.legend_rows = math.ceil(len(legend) / self.legend_cols) if len(legend) > 1 else 0
        self.w = width
        self.h = height + self.legend_rows * LEGEND_ROW
        self.top, self.bottom = MARGIN_T, height - MARGIN_B

    def px(self, x: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (x - self.x0) / span * (self.right - self.left)

    def py(self, y: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.bottom - (y - self.y0) / span * (self.bottom - self.top)

    def open(self) -> list[str]:
        t = escape(self.title)
        out = [
            f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{self.w}" '
            f'height="{self.h}" viewBox="0 0 {self.w} {self.h}" role="img" aria-label="{t}">',
            f"<title>{t}</title>",
            f'<rect x="0" y="0" width="{self.w}" height="{self.h}" fill="#fff"/>',
            f'<text x="{self.w / 2:.1f}" y="20" text-anchor="middle" font-size="14" '
            f'font-weight="bold">{t}</text>',
        ]
        for y in self.y_ticks:
            p = self.py(y)
            out.append(f'<line x1="{self.left}" y1="{p:.1f}" x2="{self.right}" y2="{p:.1f}" '
                       f'stroke="#e4e4e4"/>')  # fmt: skip
            out.append(f'<text x="{self.left - 6}" y="{p + 4:.1f}" text-anchor="end" '
                       f'font-size="11">{escape(fmt_num(y))}</text>')  # fmt: skip
        return out

    def x_axis(self, labels: Sequence[tuple[float, str]] | None = None) -> list[str]:
        out = [
            f'<line x1="{self.left}" y1="{self.bottom}" x2="{self.right}" y2="{self.bottom}" '
            f'stroke="#333"/>',
            f'<line x1="{self.left}" y1="{self.top}" x2="{self.left}" y2="{self.bottom}" '
            f'stroke="#333"/>',
        ]
        for x, label in labels if labels is not None else [(t, fmt_num(t)) for t in self.x_ticks]:
            p = self.px(x)
            out.append(f'<line x1="{p:.1f}" y1="{self.bottom}" x2="{p:.1f}" '
                       f'y2="{self.bottom + 4}" stroke="#333"/>')  # fmt: skip
            out.append(f'<text x="{p:.1f}" y="{self.bottom + 16}" text-anchor="middle" '
                       f'font-size="11">{escape(label)}</text>')  # fmt: skip
        cx = (self.left + self.right) / 2
        out.append(f'<text x="{cx:.1f}" y="{self.bottom + 34}" text-anchor="middle" '
                   f'font-size="12">{escape(self.x_label)}</text>')  # fmt: skip
        cy = (self.top + self.bottom) / 2
        out.append(f'<text x="14" y="{cy:.1f}" text-anchor="middle" font-size="12" '
                   f'transform="rotate(-90 14 {cy:.1f})">{escape(self.y_label)}</text>')  # fmt: skip
        return out

    def legend(self, items: Sequence[tuple[str, str, bool]]) -> list[str]:
        """(name, colour, dashed) per entry, in as many columns as fit, under the x axis label."""
        if len(items) <= 1:
            return []
        out: list[str] = []
        cols = self.legend_cols
        col_w = (self.right - self.left) / cols
        for i, (name, color, dashed) in enumerate(items):
            x = self.left + (i % cols) * col_w
            y = self.bottom + 52 + (i // cols) * LEGEND_ROW
            dash = ' stroke-dasharray="6 3"' if dashed else ""
            out.append(f'<line x1="{x:.1f}" y1="{y - 4}" x2="{x + 22:.1f}" y2="{y - 4}" '
                       f'stroke="{color}" stroke-width="3"{dash}/>')  # fmt: skip
            out.append(f'<text x="{x + 28:.1f}" y="{y}" font-size="11">{escape(name)}</text>')
        return out

    def no_data(self) -> str:
        return (f'<text x="{(self.left + self.right) / 2:.1f}" y="{(self.top + self.bottom) / 2:.1f}" '
                f'text-anchor="middle" font-size="13" fill="#888">no data</text>')  # fmt: skip


def _color(i: int, given: str | None = None) -> str:
    return given or PALETTE[i % len(PALETTE)]


def _y_ticks(values: Sequence[float], y_range: tuple[float, float] | None) -> list[float]:
    if y_range is not None:  # the usual range, widened when a value falls outside it
        return nice_ticks(min([y_range[0], *values]), max([y_range[1], *values]))
    if not values:
        return [0.0, 1.0]
    lo, hi = min(values), max(values)
    return nice_ticks(min(lo, 0.0) if lo >= 0 else lo, hi)


def _x_ticks(xs: Sequence[float]) -> list[float]:
    if not xs:
        return [0.0, 1.0]
    return nice_ticks(min(xs), max(xs), target=8)


def line_chart(
    title: str, series: Sequence[Series], *, x_label: str = "step", y_label: str = "",
    y_range: tuple[float, float] | None = None,
) -> str:  # fmt: skip
    """Lines over a shared x axis; a point whose neighbours are missing is drawn as a dot."""
    pts = [(x, y) for s in series for x, y in zip(s.xs, s.ys, strict=True) if y is not None]
    f = _Frame(title, _x_ticks([x for x, _ in pts]), _y_ticks([y for _, y in pts], y_range),
               [s.name for s in series], x_label, y_label)  # fmt: skip
    out = f.open()
    for i, s in enumerate(series):
        color = _color(i, s.color)
        dash = ' stroke-dasharray="6 3"' if s.dashed else ""
        runs: list[list[tuple[float, float]]] = [[]]
        for x, y in zip(s.xs, s.ys, strict=True):
            if y is None:
                runs.append([])
            else:
                runs[-1].append((f.px(x), f.py(y)))
        for run in runs:
            if len(run) == 1:
                out.append(f'<circle cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="2.5" '
                           f'fill="{color}"/>')  # fmt: skip
            elif run:
                d = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                out.append(f'<polyline points="{d}" fill="none" stroke="{color}" '
                           f'stroke-width="2"{dash}/>')  # fmt: skip
    if not pts:
        out.append(f.no_data())
    out += f.x_axis()
    out += f.legend([(s.name, _color(i, s.color), s.dashed) for i, s in enumerate(series)])
    return "\n".join(out + ["</svg>"])


def stacked_area_chart(
    title: str, xs: Sequence[float], layers: Sequence[tuple[str, Sequence[float | None]]], *,
    x_label: str = "step", y_label: str = "",
) -> str:  # fmt: skip
    """Layers stacked bottom-up in the given order (missing values count as 0)."""
    totals = [0.0] * len(xs)
    bands: list[tuple[str, list[float], list[float]]] = []
    for name, ys in layers:
        lo = list(totals)
        totals = [t + (finite(y) or 0.0) for t, y in zip(totals, ys, strict=True)]
        bands.append((name, lo, list(totals)))
    f = _Frame(title, _x_ticks(list(xs)), _y_ticks(totals, None), [n for n, _ in layers], x_label,
               y_label)  # fmt: skip
    out = f.open()
    for i, (_name, lo, hi) in enumerate(bands):
        if len(xs) == 0:
            break
        upper = [(f.px(x), f.py(y)) for x, y in zip(xs, hi, strict=True)]
        lower = [(f.px(x), f.py(y)) for x, y in zip(xs, lo, strict=True)][::-1]
        if len(xs) == 1:  # a single step: a thin bar so it stays visible
            x, _ = upper[0]
            upper = [(x - 3, upper[0][1]), (x + 3, upper[0][1])]
            lower = [(x + 3, lower[0][1]), (x - 3, lower[0][1])]
        d = " ".join(f"{x:.1f},{y:.1f}" for x, y in upper + lower)
        out.append(f'<polygon points="{d}" fill="{_color(i)}" fill-opacity="0.85" '
                   f'stroke="{_color(i)}"/>')  # fmt: skip
    if not xs or not any(totals):
        out.append(f.no_data())
    out += f.x_axis()
    out += f.legend([(name, _color(i), False) for i, (name, _) in enumerate(layers)])
    return "\n".join(out + ["</svg>"])


def bar_chart(
    title: str, bars: Sequence[tuple[str, float]], *, colors: Sequence[str] | None = None,
    x_label: str = "count",
) -> str:  # fmt: skip
    """Horizontal bars, one per (label, value), labels on the left, values at the bar ends."""
    label_w = min(260, 12 + 7 * max((len(label) for label, _ in bars), default=4))
    row = 22
    height = MARGIN_T + MARGIN_B + row * max(len(bars), 1)
    values = [max(finite(v) or 0.0, 0.0) for _, v in bars]
    ticks = nice_ticks(0.0, max(values, default=0.0) or 1.0)
    f = _Frame(title, ticks, [0.0, 1.0], [], x_label, "", height=height)
    f.left = label_w + 10
    f.right -= 30  # room for the value printed after the longest bar
    out = f.open()[:4]  # title only: no horizontal grid on a bar chart
    for t in ticks:
        p = f.px(t)
        out.append(f'<line x1="{p:.1f}" y1="{f.top}" x2="{p:.1f}" y2="{f.bottom}" stroke="#e4e4e4"/>')
    for i, ((label, _), v) in enumerate(zip(bars, values, strict=True)):
        y = f.top + i * row + 3
        color = colors[i] if colors and i < len(colors) else PALETTE[0]
        x_end = f.px(v)
        out.append(f'<rect x="{f.left}" y="{y}" width="{max(x_end - f.left, 0):.1f}" '
                   f'height="{row - 6}" fill="{color}"/>')  # fmt: skip
        out.append(f'<text x="{f.left - 6}" y="{y + row / 2:.1f}" text-anchor="end" '
                   f'font-size="11">{escape(label[:40])}</text>')  # fmt: skip
        out.append(f'<text x="{x_end + 4:.1f}" y="{y + row / 2:.1f}" font-size="11">'
                   f'{escape(fmt_num(v))}</text>')  # fmt: skip
    if not bars:
        out.append(f.no_data())
    out += f.x_axis()[:-1]  # axes, ticks and the x label; no y label
    return "\n".join(out + ["</svg>"])


def histogram(
    title: str, values: Sequence[float], *, bins: int = 20, x_label: str = "",
    markers: Sequence[tuple[str, float]] = (),
) -> str:  # fmt: skip
    """Counts of values in equal-width bins; markers are labelled vertical dashed lines."""
    vals = [v for v in (finite(x) for x in values) if v is not None]
    marks = [(name, v) for name, v in ((n, finite(x)) for n, x in markers) if v is not None]
    lo = min(vals + [m for _, m in marks], default=0.0)
    hi = max(vals + [m for _, m in marks], default=1.0)
    lo = min(lo, 0.0)
    x_ticks = nice_ticks(lo, hi if hi > lo else lo + 1.0, target=8)
    edges_lo, edges_hi = x_ticks[0], x_ticks[-1]
    width = (edges_hi - edges_lo) / bins
    counts = [0] * bins
    for v in vals:
        counts[min(int((v - edges_lo) / width), bins - 1)] += 1
    legend = ["tasks", *(name for name, _ in marks)] if marks else []
    f = _Frame(title, x_ticks, nice_ticks(0.0, max(counts, default=0) or 1.0), legend, x_label,
               "count")  # fmt: skip
    out = f.open()
    for i, c in enumerate(counts):
        if c:
            x, x_next = f.px(edges_lo + i * width), f.px(edges_lo + (i + 1) * width)
            out.append(f'<rect x="{x + 0.5:.1f}" y="{f.py(c):.1f}" width="{x_next - x - 1:.1f}" '
                       f'height="{f.bottom - f.py(c):.1f}" fill="{PALETTE[0]}"/>')  # fmt: skip
    for i, (_name, v) in enumerate(marks):
        p = f.px(v)
        out.append(f'<line x1="{p:.1f}" y1="{f.top}" x2="{p:.1f}" y2="{f.bottom}" '
                   f'stroke="{_color(i + 1)}" stroke-width="2" stroke-dasharray="6 3"/>')  # fmt: skip
    if not vals:
        out.append(f.no_data())
    out += f.x_axis()
    items = [("tasks", PALETTE[0], False)] + [(n, _color(i + 1), True) for i, (n, _) in enumerate(marks)]
    out += f.legend(items if marks else [])
    return "\n".join(out + ["</svg>"])


def quantile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated quantile of the finite values (None when there are none)."""
    vals = sorted(v for v in (finite(x) for x in values) if v is not None)
    if not vals:
        return None
    pos = q * (len(vals) - 1)
    i = math.floor(pos)
    j = min(i + 1, len(vals) - 1)
    return vals[i] + (vals[j] - vals[i]) * (pos - i)
