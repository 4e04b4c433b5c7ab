"""Server-rendered SVG charts of a session: power (kW, left axis), current and the
offered limit (A, right axis; the limit drawn as a dashed step line) over time.

Points are [t, power_w, current_a, limit_a, energy_wh] (agent/app/web/recorder.py).
No script, no library: the browser draws the SVG; the live view gets a new one
pushed when the series grew.
"""

import html
import time

W, H = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 44, 12, 28


def _nice(value: float) -> float:
    """A round axis maximum a little above ``value`` (a line at the maximum is not drawn on the
    frame), in steps the four grid lines divide evenly."""
    value *= 1.05
    if value <= 0:
        return 1.0
    for m in (1, 2, 4, 5, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 100, 120, 160, 200, 240, 320, 400, 500, 800,
              1000):
        if value <= m:
            return float(m)
    return float(int(value) + 1)


def _path(xy: list) -> str:
    return " ".join(("M" if i == 0 or xy[i - 1] is None else "L") + "%.1f,%.1f" % p
                    for i, p in enumerate(xy) if p is not None)


def session_svg(points: list, title: str = "", element_id: str = "") -> str:
    """The chart of ``points`` as an inline ``<svg>`` (an empty frame with a note
    when there are fewer than two points)."""
    e = html.escape
    ident = ' id="%s"' % e(element_id) if element_id else ""
    out = ['<svg%s class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" data-points="%d">' % (
        ident, W, H, e(title or "power and current"), len(points))]
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    out.append('<rect x="%d" y="%d" width="%d" height="%d" class="frame"/>' % (LEFT, TOP, pw, ph))
    if len(points) < 2:
        out.append('<text x="%d" y="%d" class="note">the chart starts with the session\'s second sample</text>'
                   % (LEFT + 10, TOP + ph // 2))
        out.append("</svg>")
        return "".join(out)
    t0, t1 = points[0][0], points[-1][0]
    span = max(t1 - t0, 1.0)
    kw_max = _nice(max([(p[1] or 0) / 1000 for p in points] + [0.1]))
    a_max = _nice(max([p[2] or 0 for p in points] + [p[3] or 0 for p in points] + [1]))

    def x(t):
        return LEFT + (t - t0) / span * pw

    def y(v, top):
        return TOP + ph - min(v, top) / top * ph

    for i in range(5):  # grid and axis labels
        gy = TOP + ph * i / 4
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="grid"/>' % (LEFT, gy, LEFT + pw, gy))
        out.append('<text x="%d" y="%.1f" class="axis" text-anchor="end">%g</text>' % (
            LEFT - 4, gy + 4, round(kw_max * (4 - i) / 4, 2)))
        out.append('<text x="%d" y="%.1f" class="axis">%g</text>' % (LEFT + pw + 4, gy + 4,
                                                                     round(a_max * (4 - i) / 4, 2)))
    out.append('<text x="4" y="%d" class="axis">kW</text>' % (TOP + 10))
    out.append('<text x="%d" y="%d" class="axis">A</text>' % (W - 14, TOP + 10))
    clock = "%H:%M:%S" if span < 600 else "%H:%M"
    for frac in (0, 0.5, 1):
        t = t0 + span * frac
        anchor = {0: "start", 0.5: "middle", 1: "end"}[frac]
        out.append('<text x="%.1f" y="%d" class="axis" text-anchor="%s">%s</text>' % (
            x(t), H - 8, anchor, time.strftime(clock, time.gmtime(t)) + (" UTC" if frac == 1 else "")))
    limit = []
    for i, p in enumerate(points):  # a step line: a sample's limit was set since the sample before
        if p[3] is None:
            limit.append(None)
            continue
        if i > 0:
            limit.append((x(points[i - 1][0]), y(p[3], a_max)))
        limit.append((x(p[0]), y(p[3], a_max)))
    out.append('<path d="%s" class="limit"/>' % _path(limit))
    out.append('<path d="%s" class="current"/>' % _path(
        [None if p[2] is None else (x(p[0]), y(p[2], a_max)) for p in points]))
    out.append('<path d="%s" class="power"/>' % _path(
        [None if p[1] is None else (x(p[0]), y(p[1] / 1000, kw_max)) for p in points]))
    out.append('<g class="legend"><text x="%d" y="%d" class="power-label">power kW</text>'
               '<text x="%d" y="%d" class="current-label">current A</text>'
               '<text x="%d" y="%d" class="limit-label">offered limit A</text></g>' % (
                   LEFT + 8, TOP + 14, LEFT + 80, TOP + 14, LEFT + 160, TOP + 14))
    out.append("</svg>")
    return "".join(out)
