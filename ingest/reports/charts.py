"""The run report's charts: static SVG drawn by matplotlib, inlined into the HTML page.

No JavaScript and no network: the page opens on a locked-down laptop. Text stays text in the
SVG (`svg.fonttype = none`), so the numbers a chart shows (the day totals above the bars) are
in the page and can be searched, copied and checked. matplotlib is imported here only, when
a report is drawn (never when the function app or the CLI starts).

- `rows_per_day_svg`: rows loaded per day, stacked by source (the `MAX_SOURCES` biggest, the
  rest as "other"), each bar labelled with the day's exact total (SVG id
  `rows-total-YYYY-MM-DD`);
- `durations_svg`: seconds spent loading per day for the slowest tables (one line each).
"""

from __future__ import annotations

import datetime as dt
import io
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ingest.settings import set_default

#: sources drawn in their own colour; the others are added up as "other"
MAX_SOURCES = 8
OTHER = "other"
#: a colour-blind-safe palette (Okabe-Ito), then grey for "other"
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
    "#999999",
    "#7F3C8D",
)
OTHER_COLOUR = "#BBBBBB"
WIDTH_IN = 11.0
DPI = 72
_SVG_START = re.compile(r"<svg\b")


def _configure() -> None:
    """matplotlib keeps its font cache in a folder of the temp dir (the function app's home
    may be read-only; the temp dir is writable everywhere, and one folder serves every
    process): set before matplotlib is imported, unless the user chose one."""
    folder = Path(tempfile.gettempdir()) / "ingest-matplotlib"
    folder.mkdir(parents=True, exist_ok=True)
    set_default("MPLCONFIGDIR", str(folder))


def _style(salt: str) -> dict[str, Any]:
    return {
        "svg.fonttype": "none",  # text as <text>, not glyph paths
        "svg.hashsalt": salt,  # stable ids, distinct per chart (several SVGs share one page)
        "font.family": "sans-serif",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "axes.axisbelow": True,
        "grid.color": "#e5e5e5",
        "grid.linewidth": 0.6,
    }


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    # no creation date, creator or title metadata: the same data gives the same file
    metadata = {"Date": None, "Creator": None, "Format": None, "Type": None}
    figure.savefig(buffer, format="svg", metadata=metadata)
    text = buffer.getvalue()
    match = _SVG_START.search(text)  # drop the XML prolog and DOCTYPE: the SVG goes inline
    return text[match.start() :] if match else text


def _matplotlib() -> Any:
    """The matplotlib module with the submodules the charts use, configured (its cache
    folder) before its first import: the one lazy import of it here."""
    _configure()
    # matplotlib: only when a chart is drawn (never at start-up)
    import matplotlib
    import matplotlib.collections
    import matplotlib.figure
    import matplotlib.ticker

    return matplotlib


def _figure(height_in: float) -> Any:
    return _matplotlib().figure.Figure(figsize=(WIDTH_IN, height_in), dpi=DPI)


def _thousands(value: float, _position: Any = None) -> str:
    value = float(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.0f}"


def _day_labels(days: Sequence[dt.date]) -> list[str]:
    return [f"{d:%m-%d}" for d in days]


def rows_per_day_svg(
    days: Sequence[dt.date], rows_by_day: Mapping[dt.date, Mapping[str, int]], sources: list[str]
) -> str:
    """Stacked bars: rows loaded per day and source; the day's total above each bar."""
    matplotlib = _matplotlib()

    shown = sources[:MAX_SOURCES]
    groups = [*shown, OTHER] if len(sources) > MAX_SOURCES else list(shown)
    with matplotlib.rc_context(_style("rows-per-day")):
        figure = _figure(3.6)
        # fixed margins (one drawing pass; "tight" bounding boxes draw twice)
        figure.subplots_adjust(left=0.075, right=0.99, bottom=0.17, top=0.97)
        axes = figure.add_subplot()
        positions = list(range(len(days)))
        bottom = [0] * len(days)
        for index, group in enumerate(groups):
            if group == OTHER:
                values = [
                    sum(v for s, v in rows_by_day.get(d, {}).items() if s not in shown)
                    for d in days
                ]
                colour = OTHER_COLOUR
            else:
                values = [rows_by_day.get(d, {}).get(group, 0) for d in days]
                colour = PALETTE[index % len(PALETTE)]
            # one collection of bars per source: `axes.bar` adds a patch per bar, and updating
            # the axes' limits per patch costs ~3 ms each (1.7 s for 30 days x 9 sources)
            bars = [
                ((x - 0.4, b), (x + 0.4, b), (x + 0.4, b + v), (x - 0.4, b + v))
                for x, b, v in zip(positions, bottom, values, strict=True)
            ]
            axes.add_collection(
                matplotlib.collections.PolyCollection(
                    bars, facecolors=colour, edgecolors="none", label=group
                ),
                autolim=False,
            )
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        top = max(bottom) if any(bottom) else 1
        for position, day, total in zip(positions, days, bottom, strict=True):
            label = axes.text(
                position,
                total + top * 0.02,
                f"{total:,}",
                rotation=90,
                ha="center",
                va="bottom",
                fontsize=7,
                color="#333333",
            )
            label.set_gid(f"rows-total-{day.isoformat()}")
        axes.set_ylim(0, top * 1.45)
        axes.set_xticks(positions, _day_labels(days), rotation=90, fontsize=7)
        axes.set_xlim(-0.6, len(days) - 0.4)
        axes.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_thousands))
        axes.set_ylabel("rows loaded")
        axes.grid(axis="x", visible=False)
        if groups:
            axes.legend(
                loc="upper left",
                ncols=min(len(groups), 5),
                fontsize=7,
                frameon=False,
                title="source",
                title_fontsize=7,
            )
        return _svg(figure)


def durations_svg(
    days: Sequence[dt.date],
    series: Sequence[tuple[str, Mapping[dt.date, float]]],
) -> str:
    """One line per table: seconds spent loading it per day (no point on a day without a
    load)."""
    matplotlib = _matplotlib()
    with matplotlib.rc_context(_style("durations")):
        figure = _figure(3.6)
        # fixed margins, room for the legend on the right (one drawing pass)
        figure.subplots_adjust(left=0.075, right=0.74, bottom=0.17, top=0.97)
        axes = figure.add_subplot()
        positions = list(range(len(days)))
        for index, (label, per_day) in enumerate(series):
            values = [per_day.get(d, float("nan")) for d in days]
            (line,) = axes.plot(
                positions,
                values,
                marker="o",
                markersize=3,
                linewidth=1.2,
                color=PALETTE[index % len(PALETTE)],
                label=label,
            )
            line.set_gid(f"duration-line-{index}")
        axes.set_xticks(positions, _day_labels(days), rotation=90, fontsize=7)
        axes.set_xlim(-0.6, len(days) - 0.4)
        axes.set_ylim(bottom=0)
        axes.set_ylabel("seconds per day")
        if series:
            axes.legend(
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                fontsize=7,
                frameon=False,
                title="table",
                title_fontsize=7,
            )
        return _svg(figure)
