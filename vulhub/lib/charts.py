"""Step charts as SVG geometry: scaled coordinates, path data and axis ticks; the drawing is a template's.

A value that changes at moments and holds in between (a student's points) is drawn as
steps: flat until the moment, then straight up (or down) to the new value. This module
only computes where things go in a view box of `width` x `height` units; a template
(templates/includes/progress_chart.html) writes the <svg> and escapes every label.
Standard library only: it knows nothing of students, points or time zones (the caller
gives x as numbers, e.g. timestamps, and a function that labels them).
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 480, 260
# room for the y labels on the left and the x labels below
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 52, 18, 16, 36
# Line colours, each at least 3:1 against white (WCAG 1.4.11), in order of hue; the lines
# after the fifth are dashed too, so that no two lines differ by colour alone.
PALETTE = (
    "#0072b2",
    "#d55e00",
    "#009e73",
    "#cc79a7",
    "#7b3294",
    "#8c510a",
    "#0e7490",
    "#be185d",
    "#4d7c0f",
    "#64748b",
)
DASHED_FROM = 5
DASH = "6 3"
EMPHASIS = "#1a202c"  # the line the chart is about: the site's text colour, drawn thicker
LABEL_LENGTH = 24  # legend labels longer than this are cut, with an ellipsis (tables keep them whole)


@dataclass(frozen=True)
class Series:
    """A value over x: `points` are (x, value) in x order, each value holding from its x on (0 before the first)."""

    label: str
    points: Sequence[tuple[float, float]]
    emphasis: bool = False


@dataclass(frozen=True)
class Tick:
    position: float  # in the view box: x of an x tick, y of a y tick
    value: float
    label: str
    anchor: str = "middle"  # text-anchor of an x tick's label: the first and last stay inside


@dataclass(frozen=True)
class Line:
    label: str
    short_label: str
    path: str  # SVG path data, in view box units
    colour: str
    dash: str  # stroke-dasharray, "" for a solid line
    emphasis: bool
    last: float  # the value at the end of the chart
    values: tuple[float, ...]  # the value at each x tick
    markers: tuple[tuple[float, float], ...] = ()  # where an emphasised line changes, in view box units


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    lines: tuple[Line, ...] = field(default=())  # in the order given (the legend's)
    peak: float = 0  # the highest value of any line

    @property
    def empty(self) -> bool:
        """Nothing to draw: no line ever leaves zero."""
        return self.peak <= 0

    @property
    def drawn(self) -> tuple[Line, ...]:
        """The lines in drawing order: emphasised ones last, on top."""
        return tuple(sorted(self.lines, key=lambda line: line.emphasis))

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width} {self.height}"

    @property
    def tick_bottom(self) -> float:
        """Where the x ticks' marks end, below the axis."""
        return self.bottom + 5

    @property
    def columns(self) -> tuple[Tick, ...]:
        """The x ticks a table of the numbers needs: from the first where a line has left zero (the last always)."""
        first = next(
            (i for i in range(len(self.x_ticks)) if any(line.values[i] for line in self.lines)),
            len(self.x_ticks) - 1,
        )
        return self.x_ticks[max(first, 0) :]

    @property
    def table(self) -> tuple[tuple[Line, tuple[tuple[str, float], ...]], ...]:
        """The numbers the chart shows: each line with its value under each of `columns`' labels."""
        skipped = len(self.x_ticks) - len(self.columns)
        labels = [tick.label for tick in self.columns]
        return tuple((line, tuple(zip(labels, line.values[skipped:], strict=True))) for line in self.lines)


def nice_ceiling(top: float, ticks: int = 4) -> tuple[float, float]:
    """(axis top, tick step) for values 0..top: the step 1, 2 or 5 times a power of ten, whole numbers."""
    if top <= 0:
        return 1.0, 1.0
    raw = top / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(step, 1.0)
    return math.ceil(top / step) * step, step


def value_at(points: Sequence[tuple[float, float]], x: float) -> float:
    """The value a step series holds at x: that of its last point at or before x, 0 before the first."""
    value = 0.0
    for px, py in points:
        if px > x:
            break
        value = py
    return value


def shorten(label: str, length: int = LABEL_LENGTH) -> str:
    label = " ".join(label.split())
    return label if len(label) <= length else label[: length - 1].rstrip() + "…"


def _number(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def step_chart(
    series: Sequence[Series],
    *,
    start: float,
    end: float,
    x_label: Callable[[float], str] = _number,
    x_tick_count: int = 3,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Chart:
    """The geometry of `series` drawn as steps over x from `start` to `end`, y from 0 to a round top.

    Points outside start..end are drawn at the nearer edge. x ticks divide the span into
    `x_tick_count` equal parts; a tick whose label repeats the next one's is left out (the
    last, at the end, always stays). A span of zero puts its one moment in the middle,
    with a single tick.
    """
    left, right = float(MARGIN_LEFT), float(width - MARGIN_RIGHT)
    top, bottom = float(MARGIN_TOP), float(height - MARGIN_BOTTOM)
    if end < start:
        start, end = end, start
    degenerate = end == start
    low, high = (start - 1, end + 1) if degenerate else (start, end)
    peak = max((y for s in series for _, y in s.points), default=0)
    y_top, y_step = nice_ceiling(peak)

    def sx(x: float) -> float:
        return round(left + (min(max(x, low), high) - low) / (high - low) * (right - left), 1)

    def sy(y: float) -> float:
        return round(bottom - max(y, 0) / y_top * (bottom - top), 1)

    moments = [start] if degenerate else [start + (end - start) * i / x_tick_count for i in range(x_tick_count + 1)]
    x_ticks: list[Tick] = []
    for i in reversed(range(len(moments))):  # from the end, which always stays: it holds the last values
        moment, label = moments[i], x_label(moments[i])
        if x_ticks and label == x_ticks[0].label:
            continue
        anchor = "middle" if degenerate else ("start" if i == 0 else "end" if i == len(moments) - 1 else "middle")
        x_ticks.insert(0, Tick(sx(moment), moment, label, anchor))
    y_ticks = tuple(
        Tick(sy(i * y_step), i * y_step, _number(i * y_step)) for i in range(int(round(y_top / y_step)) + 1)
    )

    lines, others = [], 0
    for s in series:
        if s.emphasis:
            colour, dash = EMPHASIS, ""
        else:
            colour = PALETTE[others % len(PALETTE)]
            dash = DASH if others % (2 * DASHED_FROM) >= DASHED_FROM else ""
            others += 1
        path, markers, current = [f"M{_number(sx(low))} {_number(sy(0))}"], [], 0.0
        for x, y in s.points:
            if y == current:
                continue
            path.append(f"H{_number(sx(x))}V{_number(sy(y))}")
            markers.append((sx(x), sy(y)))
            current = y
        path.append(f"H{_number(sx(high))}")
        lines.append(
            Line(
                label=s.label,
                short_label=shorten(s.label),
                path="".join(path),
                colour=colour,
                dash=dash,
                emphasis=s.emphasis,
                last=value_at(s.points, high),
                values=tuple(value_at(s.points, tick.value) for tick in x_ticks),
                markers=tuple(markers) if s.emphasis else (),
            )
        )
    return Chart(width, height, left, right, top, bottom, tuple(x_ticks), y_ticks, tuple(lines), peak)
