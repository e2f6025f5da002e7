"""Charts drawn on the server as inline SVG: no script, no library, readable without colour (tables follow each).

Every label is escaped (``markupsafe.escape``); numbers are formatted here. A chart is a ``Markup`` of one
``<svg role="img">`` with a ``<title>`` naming what it shows, and its legend is part of the picture.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

# Okabe–Ito and a few more: distinguishable for the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000", "#8C564B", "#7F7F7F",
           "#17BECF", "#BCBD22")
OTHER = "#BBBBBB"
MAX_SERIES = 8


def _nice(top: float) -> float:
    """A round top for an axis of four steps (whole numbers for small counts)."""
    if top <= 0:
        return 4.0
    if top <= 8:
        return 4.0 * -(-top // 4) if top > 4 else 4.0
    step = 10 ** (len(str(int(top))) - 1)
    for factor in (1, 2, 2.5, 5, 10):
        if factor * step >= top:
            return float(factor * step)
    return float(10 * step)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def stacked_bars(title: str, months: Sequence[str], series: dict[str, dict[str, int]], *, width: int = 640, height: int = 300) -> Markup:
    """One bar per month, stacked by series (the biggest first; beyond ``MAX_SERIES`` they are summed as "other")."""
    totals = {name: sum(values.values()) for name, values in series.items()}
    names = sorted(totals, key=lambda n: (-totals[n], n))
    if len(names) > MAX_SERIES:
        keep, rest = names[: MAX_SERIES - 1], names[MAX_SERIES - 1:]
        other = {m: sum(series[n].get(m, 0) for n in rest) for m in months}
        series = {n: series[n] for n in keep} | {"other": other}
        names = [*keep, "other"]
    colours = {n: (OTHER if n == "other" else PALETTE[i % len(PALETTE)]) for i, n in enumerate(names)}
    left, right, top, legend_h = 44, 12, 28, 20 * ((len(names) + 3) // 4)
    bottom = 28 + legend_h
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice(max([sum(series[n].get(m, 0) for n in names) for m in months] or [0]))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
             f'<text x="{left}" y="16" font-weight="bold">{escape(title)}</text>']
    for i in range(5):
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(value)}</text>')
    slot = plot_w / max(len(months), 1)
    bar = min(48.0, slot * 0.7)
    for index, month in enumerate(months):
        x = left + slot * index + (slot - bar) / 2
        y = top + plot_h
        for name in names:
            count = series[name].get(month, 0)
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colours[name]}">'
                         f'<title>{escape(month)} · {escape(name)}: {count}</title></rect>')
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{escape(month[2:] if len(months) > 8 else month)}</text>')
    parts += _legend(names, colours, left, height - legend_h + 6, width - left)
    parts.append("</svg>")
    return Markup("".join(parts))


def _legend(names: Sequence[str], colours: dict[str, str], x0: int, y0: int, span: int) -> list[str]:
    out = []
    column = span / 4
    for i, name in enumerate(names):
        x = x0 + column * (i % 4)
        y = y0 + 20 * (i // 4)
        out.append(f'<rect x="{x:.1f}" y="{y}" width="12" height="12" fill="{colours[name]}"/>'
                   f'<text x="{x + 17:.1f}" y="{y + 11}">{escape(str(name)[:22])}</text>')
    return out


def hbars(title: str, rows: Sequence[tuple[str, float | None]], *, unit: str = "", width: int = 640, maximum: float | None = None) -> Markup:
    """Horizontal bars, one per (label, value); a missing value is drawn as "no data"."""
    label_w, right, top, row_h = 200, 70, 28, 26
    height = top + row_h * max(len(rows), 1) + 8
    plot_w = width - label_w - right
    peak = maximum if maximum is not None else _nice(max([v for _, v in rows if v is not None] or [0]))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
             f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>']
    for i, (label, value) in enumerate(rows):
        y = top + row_h * i
        parts.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end">{escape(str(label)[:32])}</text>')
        if value is None:
            parts.append(f'<text x="{label_w + 4}" y="{y + 16}" fill="#555">no data</text>')
            continue
        w = plot_w * min(value, peak) / peak if peak else 0
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{PALETTE[i % 2]}">'
                     f'<title>{escape(str(label))}: {_fmt(value)}{escape(unit)}</title></rect>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + 16}">{_fmt(value)}{escape(unit)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
