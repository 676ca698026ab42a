"""The step chart's geometry (vulhub.lib.charts) and its template: scaling, edge cases, escaping."""

import re

from django.template.loader import render_to_string

from vulhub.lib import charts
from vulhub.lib.charts import Series, nice_ceiling, shorten, step_chart, value_at


def xs_of(path: str) -> list[float]:
    """The x coordinates a path moves to: its M and each H."""
    return [float(x) for x in re.findall(r"[MH](-?[\d.]+)", path)]


def ys_of(path: str) -> list[float]:
    """The y coordinates a path moves to: its M's and each V."""
    return [float(y) for y in re.findall(r"(?:M-?[\d.]+ |V)(-?[\d.]+)", path)]


# --- scaling -------------------------------------------------------------------------------------


def test_it_scales_x_over_the_span_and_y_from_zero_to_a_round_top():
    chart = step_chart([Series("Ann", [(25, 50), (75, 200)])], start=0, end=100)

    line = chart.lines[0]
    assert (chart.left, chart.right) == (charts.MARGIN_LEFT, charts.WIDTH - charts.MARGIN_RIGHT)
    width = chart.right - chart.left
    # flat from the start, up at 25 % and 75 % of the width, flat to the end
    assert xs_of(line.path) == [
        chart.left,
        round(chart.left + width / 4, 1),
        round(chart.left + width * 3 / 4, 1),
        chart.right,
    ]
    assert [t.value for t in chart.y_ticks] == [0, 50, 100, 150, 200]
    height = chart.bottom - chart.top
    assert ys_of(line.path) == [chart.bottom, round(chart.bottom - height / 4, 1), chart.top]


def test_the_y_axis_tops_at_a_round_number_above_the_highest_value():
    assert nice_ceiling(270) == (300, 100)
    assert nice_ceiling(1234) == (1500, 500)
    assert nice_ceiling(3) == (3, 1)  # never a step below one point
    assert nice_ceiling(0) == (1, 1)


def test_a_value_holds_from_its_moment_until_the_next():
    points = [(10, 5), (20, 8)]

    assert [value_at(points, x) for x in (0, 10, 15, 20, 99)] == [0, 5, 5, 8, 8]


def test_points_outside_the_span_are_drawn_at_its_edges():
    chart = step_chart([Series("Ann", [(-50, 10), (500, 20)])], start=0, end=100)

    assert min(xs_of(chart.lines[0].path)) == chart.left
    assert max(xs_of(chart.lines[0].path)) == chart.right


def test_a_fall_is_drawn_down_and_nothing_goes_below_the_axis():
    chart = step_chart([Series("Ann", [(10, 100), (50, 40), (60, -5)])], start=0, end=100)

    ys = ys_of(chart.lines[0].path)
    assert ys[1] < ys[2]  # down from 100 to 40 (y grows downwards)
    assert max(ys) == chart.bottom


def test_the_x_ticks_divide_the_span_and_keep_their_labels_inside():
    chart = step_chart([Series("Ann", [(10, 1)])], start=0, end=400, x_label=lambda x: f"t{x:g}", x_tick_count=4)

    assert [t.label for t in chart.x_ticks] == ["t0", "t100", "t200", "t300", "t400"]
    assert [t.anchor for t in chart.x_ticks] == ["start", "middle", "middle", "middle", "end"]
    assert chart.lines[0].values == (0, 1, 1, 1, 1)
    assert [t.value for t in step_chart([], start=0, end=300).x_ticks] == [0, 100, 200, 300]  # three parts by default


def test_ticks_whose_label_repeats_are_left_out_but_the_end_stays():
    chart = step_chart(
        [Series("Ann", [(10, 1)])], start=0, end=400, x_label=lambda x: f"day {x // 250:g}", x_tick_count=4
    )

    assert [(t.label, t.value) for t in chart.x_ticks] == [("day 0", 200), ("day 1", 400)]
    assert chart.lines[0].values == (1, 1)

    one_day = step_chart([Series("Ann", [(10, 1)])], start=0, end=400, x_label=lambda x: "same day")
    assert [(t.label, t.value, t.anchor) for t in one_day.x_ticks] == [("same day", 400, "end")]


def test_the_table_has_each_lines_value_under_each_x_ticks_label():
    chart = step_chart(
        [Series("Ann", [(10, 1), (250, 3)]), Series("Bob", [(350, 2)])], start=0, end=300, x_label=lambda x: f"at {x:g}"
    )

    # the start, where every line is still at zero, says nothing: the table starts after it
    assert [(line.label, cells) for line, cells in chart.table] == [
        ("Ann", (("at 100", 1), ("at 200", 1), ("at 300", 3))),
        ("Bob", (("at 100", 0), ("at 200", 0), ("at 300", 0))),  # 350 is past the end
    ]
    nothing = step_chart([Series("Ann", [])], start=0, end=300, x_label=lambda x: f"at {x:g}")
    assert [cells for _, cells in nothing.table] == [(("at 300", 0),)]


# --- empty data, one point, many points ---------------------------------------------------------


def test_no_series_at_all_is_an_empty_chart():
    chart = step_chart([], start=0, end=100)

    assert chart.empty
    assert chart.lines == ()
    assert [t.value for t in chart.y_ticks] == [0, 1]


def test_series_that_never_leave_zero_are_an_empty_chart():
    chart = step_chart([Series("Ann", []), Series("Bob", [(5, 0)])], start=0, end=100)

    assert chart.empty
    assert [line.last for line in chart.lines] == [0, 0]
    assert chart.lines[0].path == f"M{chart.left:g} {chart.bottom:g}H{chart.right:g}"


def test_one_point_is_a_single_step():
    chart = step_chart([Series("Ann", [(50, 200)], emphasis=True)], start=0, end=100)

    line = chart.lines[0]
    assert not chart.empty
    assert line.path.count("V") == 1
    assert line.last == 200
    assert line.markers == ((round(chart.left + (chart.right - chart.left) / 2, 1), chart.top),)


def test_a_span_of_one_moment_puts_it_in_the_middle_with_one_tick():
    chart = step_chart([Series("Ann", [(1000, 50)])], start=1000, end=1000)

    middle = round((chart.left + chart.right) / 2, 1)
    assert [t.position for t in chart.x_ticks] == [middle]
    assert xs_of(chart.lines[0].path)[1] == middle
    assert chart.lines[0].last == 50


def test_many_points_and_many_lines_stay_inside_the_plot():
    series = [
        Series(f"Student {n}", [(minute, minute * (n + 1)) for minute in range(0, 1000, 3)], emphasis=n == 3)
        for n in range(11)
    ]

    chart = step_chart(series, start=0, end=1000)

    assert len(chart.lines) == 11
    for line in chart.lines:
        assert all(chart.left <= x <= chart.right for x in xs_of(line.path))
        assert all(chart.top <= y <= chart.bottom for y in ys_of(line.path))
    assert chart.y_ticks[-1].value >= 999 * 11
    assert chart.drawn[-1].emphasis  # the emphasised line is drawn last, on top


def test_each_other_line_gets_its_own_colour_or_dash():
    series = [Series(f"S{n}", [(1, n + 1)]) for n in range(10)] + [Series("Me", [(1, 1)], emphasis=True)]

    lines = step_chart(series, start=0, end=10).lines

    looks = {(line.colour, line.dash) for line in lines}
    assert len(looks) == 11
    assert lines[-1].colour == charts.EMPHASIS
    assert sum(bool(line.dash) for line in lines) == 5


# --- names ---------------------------------------------------------------------------------------


def test_long_names_are_cut_for_the_legend_only():
    name = "Maximiliana Wolfeschlegelsteinhausenbergerdorff"

    line = step_chart([Series(name, [(1, 1)])], start=0, end=2).lines[0]

    assert line.label == name
    assert line.short_label == shorten(name)
    assert len(line.short_label) == charts.LABEL_LENGTH
    assert line.short_label.endswith("…")
    assert shorten("  Ann \n  Lee ") == "Ann Lee"


def render(chart, summary="Points"):
    return render_to_string(
        "includes/progress_chart.html",
        {"chart": {"geometry": chart, "summary": summary, "frozen_at": None}, "chart_id": "c"},
    )


def test_the_template_escapes_every_name_and_draws_an_accessible_image():
    hostile = '<script>alert("x")</script> & "Bobby" ' + "x" * 60
    chart = step_chart(
        [Series(hostile, [(10, 100)]), Series("You", [(20, 50)], emphasis=True)],
        start=0,
        end=100,
        x_label=lambda x: "<b>day</b>",  # one label: only the last tick stays
    )

    html = render(chart, summary=f"Points of {hostile}")

    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;Bobby&quot;" in html
    assert 'role="img"' in html and 'aria-labelledby="c-title c-desc"' in html
    assert '<title id="c-title">Points over time</title>' in html
    assert "style=" not in html  # the Content-Security-Policy allows no style attribute
    # the numbers as a table, each cell labelled with its column for the phone's stacked cards
    assert '<td class="num" data-label="&lt;b&gt;day&lt;/b&gt;">100</td>' in html
    assert html.count("<path ") == 2


def test_the_template_says_so_when_there_is_nothing_to_draw():
    html = render(step_chart([Series("You", [])], start=0, end=1))

    assert "No points yet." in html
    assert "<svg" not in html
    assert "No points yet." in render(None)
