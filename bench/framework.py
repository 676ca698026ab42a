"""The benchmark suite's pieces: series of measurements, figures with their goals, the context.

A scenario (bench/scenarios/sNN_*.py) measures what VulHub does and a baseline in the
same run, on the same data, and returns Figures. Every figure is judged by a ratio of
medians (or, where the issue sets one, an absolute bound); the table shows the absolute
numbers beside it, labelled with the machine.
"""

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass
class Series:
    """Repeated measurements of one thing: `runs` values in `unit` (ms, req/s, queries, ...)."""

    label: str
    values: list[float]
    unit: str = "ms"

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "unit": self.unit,
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "values": self.values,
        }


# How a figure is judged:
#   "speed":    how much faster ours is: baseline/ours for times, ours/baseline for rates
#   "cost":     how much more ours costs: ours/baseline for times (the inverse of speed)
#   "absolute": ours' median against the goal itself (p95 in ms, queries, pages/s)
RATE_UNITS = {"req/s", "rows/s", "pages/s", "submissions/s"}


@dataclass
class Figure:
    scenario: str
    name: str
    ours: Series
    baseline: Series | None = None
    compare: str = "speed"  # speed | cost | absolute
    goal_op: str = ">="  # >= | <= | < | ==
    goal: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.compare == "absolute" or self.baseline is None:
            return None
        ours, base = self.ours.median, self.baseline.median
        if ours == 0 or base == 0:
            return None
        rate = self.ours.unit in RATE_UNITS
        speed = ours / base if rate else base / ours
        return speed if self.compare == "speed" else 1 / speed

    @property
    def judged(self) -> float | None:
        return self.ours.median if self.compare == "absolute" else self.ratio

    @property
    def met(self) -> bool | None:
        value = self.judged
        if self.goal is None or value is None:
            return None
        return {
            ">=": value >= self.goal,
            "<=": value <= self.goal,
            "<": value < self.goal,
            ">": value > self.goal,
            "==": value == self.goal,
        }[self.goal_op]

    def goal_text(self) -> str:
        if self.goal is None:
            return "report"
        if self.compare == "absolute":
            return f"{self.goal_op} {self.goal:g} {self.ours.unit}"
        return f"{self.goal_op} {self.goal:g}x {self.compare}"

    def as_dict(self) -> dict:
        return {
            "scenario": self.scenario,
            "name": self.name,
            "ours": self.ours.as_dict(),
            "baseline": self.baseline.as_dict() if self.baseline else None,
            "compare": self.compare,
            "ratio": self.ratio,
            "goal": self.goal_text(),
            "met": self.met,
            "note": self.note,
            "extra": self.extra,
        }


@dataclass
class Context:
    """What a scenario gets: how often to repeat, which data, and where to log."""

    runs: int
    smoke: bool
    tenants: list[dict]  # generated tenants, largest first: {"id", "slug", "domain", "students", "submissions"}
    log: Callable[[str], None] = print
    scratch: dict = field(default_factory=dict)  # shared between scenarios of one run (e.g. a running server)

    @property
    def largest(self) -> dict:
        return self.tenants[0]


def timed_ms(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def repeat_ms(fn: Callable[[], object], runs: int, warmup: int = 1) -> list[float]:
    """fn's wall time in ms, `runs` times after `warmup` unrecorded calls."""
    for _ in range(warmup):
        fn()
    return [timed_ms(fn) for _ in range(runs)]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "cpus": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            total_kb = int(f.readline().split()[1])
            info["memory_gb"] = round(total_kb / 1024 / 1024)
    except OSError:
        pass
    return info


def result_document(figures: list[Figure], errors: dict, context: Context, started: float) -> dict:
    return {
        "machine": machine(),
        "smoke": context.smoke,
        "runs": context.runs,
        "tenants": context.tenants,
        "seconds": round(time.time() - started, 1),
        "figures": [f.as_dict() for f in figures],
        "errors": errors,
    }


__all__ = ["Context", "Figure", "Series", "asdict", "p95", "repeat_ms", "result_document", "timed_ms"]
