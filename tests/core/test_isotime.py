"""agent/core/isotime.py, the one formatter and parser of OCPP dateTimes: property tests.

``format_datetime(t, millis=True)`` makes every 1.6 timestamp (``codec.iso_time`` is
a thin name for it); it must give exactly what the earlier ``datetime``-based
``iso_time`` gave (kept below as the reference), including the rounding of a time
a hair below a whole second, and ``parse_datetime`` must read it back.
"""

from datetime import datetime, timezone
from math import nextafter

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agent.core.isotime import format_datetime, parse_datetime
from agent.ocpp16.codec import iso_time

MIDNIGHT = 1_767_225_600  # 2026-01-01T00:00:00Z
MAX_T = 253_402_300_799  # 9999-12-31T23:59:59Z, the datetime module's last second


def reference_iso_time(ts: float) -> str:
    """The earlier agent/ocpp16/codec.py iso_time, verbatim."""
    ms = int(round(ts * 1000))  # seconds and milliseconds from one rounding (x.9999999 is x+1.000)
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (
        ms % 1000)


times = st.floats(min_value=0, max_value=MAX_T - 1, allow_nan=False, allow_infinity=False)
# Times near the edges of seconds and milliseconds, where the rounding matters.
near_edges = st.builds(lambda s, ms, eps: s + ms / 1000 + eps, st.integers(0, 4_000_000_000),
                       st.integers(0, 1000), st.sampled_from([0.0, 1e-7, -1e-7, 4.99e-4, -4.99e-4, 5e-4, -5e-4]))


@given(st.one_of(times, near_edges))
@example(MIDNIGHT + 59.9999999)
@example(nextafter(MIDNIGHT + 60, 0))
@example(MIDNIGHT + 0.9995)
@example(MIDNIGHT + 0.0005)
@example(0.0)
def test_millisecond_timestamps_match_the_earlier_iso_time(t):
    assert format_datetime(t, millis=True) == reference_iso_time(t)
    assert iso_time(t) == reference_iso_time(t)


@given(st.one_of(times, near_edges))
def test_format_then_parse_is_the_time_rounded_to_the_millisecond(t):
    text = format_datetime(t, millis=True)
    assert len(text) == 24 and text.endswith("Z") and text[19] == "."
    assert parse_datetime(text) == pytest.approx(round(t * 1000) / 1000, abs=1e-6)
    # Without milliseconds: the same second, the milliseconds dropped.
    assert format_datetime(t) == text[:19] + "Z"


@given(st.integers(0, MAX_T), st.integers(0, 999))
def test_parse_then_format_gives_the_text_back(seconds, ms):
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % ms
    assert format_datetime(parse_datetime(text), millis=True) == text
    assert format_datetime(parse_datetime(text[:19] + "Z")) == text[:19] + "Z"


def test_a_hair_below_a_whole_second_is_that_second():
    whole = MIDNIGHT + 60
    assert format_datetime(whole + 0.9999999 - 1, millis=True) == "2026-01-01T00:01:00.000Z"
    assert format_datetime(nextafter(whole, 0), millis=True) == "2026-01-01T00:01:00.000Z"
    assert format_datetime(nextafter(whole, 0)) == "2026-01-01T00:01:00Z"
    assert format_datetime(whole + 0.9996, millis=True) == "2026-01-01T00:01:01.000Z"
    assert format_datetime(whole + 0.9994, millis=True) == "2026-01-01T00:01:00.999Z"
    assert format_datetime(whole + 0.25, millis=True) == "2026-01-01T00:01:00.250Z"
