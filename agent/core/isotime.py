"""OCPP dateTime strings <-> epoch seconds, without ``datetime`` (portable core).

OCPP 1.6 §3.15: "Implementations MUST use ISO 8601 date time notation. Message
receivers must be able to handle fractional seconds and time zone offsets
(another implementation might use them)." So ``parse_datetime`` accepts
``2024-08-22T01:55:10Z``, ``…10.123Z``, ``…10,5+02:00``, ``…10+0200``,
``…10-05``, a missing seconds field (``2013-01-01T00:00Z``, as in the
specification's own example in §3.13.7) and a missing zone, which is read as
UTC (§3.14 strongly recommends UTC everywhere). Pure integer arithmetic
(Howard Hinnant's days-from-civil), so it runs on MicroPython too.
"""


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of the proleptic Gregorian date y-m-d."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple:
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _digits(s: str, i: int, n: int, what: str) -> int:
    part = s[i:i + n]
    if len(part) != n or not part.isdigit():
        raise ValueError("bad %s in dateTime %r" % (what, s))
    return int(part)


def parse_datetime(text: str) -> float:
    """Seconds since the epoch (UTC) of an ISO 8601 / OCPP dateTime string.

    Raises ``ValueError`` for anything that is not a complete date and time.
    """
    if not isinstance(text, str):
        raise ValueError("dateTime must be a string, not %r" % (text,))
    s = text.strip()
    y = _digits(s, 0, 4, "year")
    if s[4:5] != "-" or s[7:8] != "-" or s[10:11] not in ("T", "t", " "):
        raise ValueError("bad dateTime %r" % text)
    mo = _digits(s, 5, 2, "month")
    d = _digits(s, 8, 2, "day")
    h = _digits(s, 11, 2, "hour")
    if s[13:14] != ":":
        raise ValueError("bad dateTime %r" % text)
    mi = _digits(s, 14, 2, "minute")
    i = 16
    sec = 0.0
    if s[i:i + 1] == ":":
        sec = float(_digits(s, i + 1, 2, "second"))
        i += 3
        if s[i:i + 1] in (".", ","):
            j = i + 1
            while j < len(s) and s[j].isdigit():
                j += 1
            if j == i + 1:
                raise ValueError("bad fraction in dateTime %r" % text)
            sec += float("0." + s[i + 1:j])
            i = j
    if not (1 <= mo <= 12 and 1 <= d <= _MONTH_DAYS[mo - 1] and h <= 24 and mi <= 59 and sec < 61):
        raise ValueError("dateTime out of range: %r" % text)
    if mo == 2 and d == 29 and not (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
        raise ValueError("dateTime out of range: %r" % text)
    offset_s = 0
    rest = s[i:]
    if rest in ("Z", "z", ""):
        pass
    elif rest[0] in "+-":
        sign = 1 if rest[0] == "+" else -1
        body = rest[1:].replace(":", "")
        if len(body) not in (2, 4) or not body.isdigit():
            raise ValueError("bad zone offset in dateTime %r" % text)
        offset_s = sign * (int(body[:2]) * 3600 + (int(body[2:]) * 60 if len(body) == 4 else 0))
    else:
        raise ValueError("bad dateTime %r" % text)
    return _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s


def format_datetime(t: float, millis: bool = False) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` (UTC) for epoch seconds ``t``; with ``millis``,
    ``…SS.mmmZ`` (the OCPP 1.6 timestamps). ``t`` is rounded to the millisecond
    once, and the seconds and milliseconds are both taken from that rounding:
    59.9999999 is 60.000 (the next second), never 59.1000; without ``millis``
    the milliseconds are then dropped (truncated toward the past)."""
    whole, ms = divmod(int(round(t * 1000)), 1000)
    days, rem = divmod(whole, 86400)
    y, mo, d = _civil_from_days(days)
    text = "%04d-%02d-%02dT%02d:%02d:%02d" % (y, mo, d, rem // 3600, rem % 3600 // 60, rem % 60)
    return text + (".%03dZ" % ms if millis else "Z")
