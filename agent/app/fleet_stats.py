"""What a fleet measures per station, from the frames its agent exchanges: round trips of
the CALLs it sends, answers refused, CALLERRORs and schema-invalid replies from the
backend, completed sessions.

``StationStats.frame`` is the agent's ``traffic_log`` (called for every frame in and
out of the main connection), so an agent outside a fleet pays nothing. Per frame it
costs a regex on the frame's head for a frame going out, and one ``json.loads`` of an
answer coming in (plus its schema check, ``validate_replies``). Latencies go into
log-bucketed histograms: constant memory, mergeable across stations, percentiles
within ±2.5 %.
"""

import json
import math
import re
import time

_HEAD = re.compile(r'\[\s*(\d)\s*,\s*"((?:[^"\\]|\\.)*)"\s*(?:,\s*"([^"\\]*)")?')
_ENDED = re.compile(r'"eventType"\s*:\s*"Ended"')
_STEP = math.log(1.05)  # bucket width: 5 %
_MIN_S = 1e-5
MAX_EXAMPLES = 5  # of schema-invalid replies, kept for the report
ACCEPTED = ("Accepted", None)
SESSION_ENDS = ("StopTransaction",)  # and TransactionEvent Ended (2.0.1)


class Histogram:
    """Counts of values in buckets 5 % wide (log scale)."""

    __slots__ = ("buckets", "count", "max_s")

    def __init__(self) -> None:
        self.buckets: dict = {}
        self.count = 0
        self.max_s = 0.0

    def add(self, value_s: float) -> None:
        b = int(math.log(max(value_s, _MIN_S) / _MIN_S) / _STEP)
        self.buckets[b] = self.buckets.get(b, 0) + 1
        self.count += 1
        if value_s > self.max_s:
            self.max_s = value_s

    def merge(self, other: "Histogram") -> "Histogram":
        for b, n in other.buckets.items():
            self.buckets[b] = self.buckets.get(b, 0) + n
        self.count += other.count
        self.max_s = max(self.max_s, other.max_s)
        return self

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0..100) in seconds: the middle of its bucket; None when empty."""
        if not self.count:
            return None
        if q >= 100:
            return self.max_s
        rank, seen = q / 100.0 * self.count, 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                return min(_MIN_S * math.exp((b + 0.5) * _STEP), self.max_s)
        return self.max_s

    def summary_ms(self) -> dict:
        def ms(v):
            return None if v is None else round(v * 1000.0, 2)

        return {"p50": ms(self.percentile(50)), "p95": ms(self.percentile(95)), "p99": ms(self.percentile(99)),
                "max": ms(self.max_s if self.count else None), "n": self.count}


class CallStats:
    """One action's CALLs from the station."""

    __slots__ = ("sent", "answered", "rejected", "errors", "invalid", "unanswered", "latency")

    def __init__(self) -> None:
        self.sent = self.answered = self.rejected = self.errors = self.invalid = self.unanswered = 0
        self.latency = Histogram()

    def merge(self, o: "CallStats") -> "CallStats":
        for name in ("sent", "answered", "rejected", "errors", "invalid", "unanswered"):
            setattr(self, name, getattr(self, name) + getattr(o, name))
        self.latency.merge(o.latency)
        return self

    def as_dict(self) -> dict:
        return {"sent": self.sent, "answered": self.answered, "rejected": self.rejected, "callerrors": self.errors,
                "invalid": self.invalid, "unanswered": self.unanswered, "latency_ms": self.latency.summary_ms()}


def refused(payload) -> bool:
    """An answer that refuses: a status, or an idTagInfo / idTokenInfo status, other than Accepted."""
    if not isinstance(payload, dict):
        return False
    if payload.get("status") not in ACCEPTED:
        return True
    info = payload.get("idTagInfo") or payload.get("idTokenInfo")
    return isinstance(info, dict) and info.get("status") not in ACCEPTED


class StationStats:
    """One station's figures; ``frame`` is its agent's ``traffic_log``. ``version()`` gives the
    OCPP version of the connection (for the schema check of answers)."""

    def __init__(self, version=lambda: None, validate_replies: bool = True, now=time.perf_counter) -> None:
        self.version = version
        self.validate_replies = validate_replies
        self.now = now  # real time: round trips are measured on the wire, also in a virtual-time fleet
        self.calls: dict = {}  # action -> CallStats
        self.frames_out = self.frames_in = 0
        self.sessions_completed = 0
        self.callerrors_received: dict = {}  # code -> n (answers to the station's CALLs)
        self.callerrors_sent: dict = {}  # code -> n (the station refused a frame from the backend)
        self.backend_calls: dict = {}  # action -> n (requests from the backend)
        self.invalid_examples: list = []
        self.window = Histogram()  # round trips since the live view last took them
        self._pending: dict = {}  # unique id -> (action, sent at, ends a session)

    def frame(self, direction: str, text: str) -> None:
        if direction == "out":
            self.frames_out += 1
            m = _HEAD.match(text)
            if m is None:
                return
            kind = m.group(1)
            if kind == "2":
                self._call_out(m.group(2), m.group(3) or "?", text)
            elif kind == "4":
                code = _error_code(text)
                self.callerrors_sent[code] = self.callerrors_sent.get(code, 0) + 1
        elif direction == "in":
            self.frames_in += 1
            self._frame_in(text)

    def _call_out(self, uid: str, action: str, text: str) -> None:
        # One CALL at a time per connection: one still waiting timed out or lost its connection.
        if self._pending:
            for old_action, _t, _e in self._pending.values():
                self._stats(old_action).unanswered += 1
            self._pending.clear()
        ends = action in SESSION_ENDS or (action == "TransactionEvent" and _ENDED.search(text) is not None)
        self._pending[uid] = (action, self.now(), ends)
        self._stats(action).sent += 1

    def _frame_in(self, text: str) -> None:
        m = _HEAD.match(text)
        if m is None:
            return
        if m.group(1) == "2":  # a request from the backend: counted by action
            action = m.group(3) or "?"
            self.backend_calls[action] = self.backend_calls.get(action, 0) + 1
            return
        if m.group(2) not in self._pending:
            return
        action, sent_s, ends = self._pending.pop(m.group(2))
        elapsed_s = self.now() - sent_s
        st = self._stats(action)
        st.latency.add(elapsed_s)
        self.window.add(elapsed_s)
        if m.group(1) == "4":
            st.errors += 1
            code = _error_code(text)
            self.callerrors_received[code] = self.callerrors_received.get(code, 0) + 1
            return
        st.answered += 1
        try:
            payload = json.loads(text)[2]
        except (ValueError, IndexError, TypeError):
            st.invalid += 1
            return
        if self.validate_replies and not self._valid(action, payload):
            st.invalid += 1
            return
        if refused(payload):
            st.rejected += 1
        if ends:  # the session is over at the backend, whatever it says of the tag
            self.sessions_completed += 1

    def _valid(self, action: str, payload) -> bool:
        version = self.version()
        if version is None:
            return True
        from ocpp.messages import get_validator  # cached per action by the library
        from jsonschema.exceptions import ValidationError

        try:
            get_validator(3, action, version).validate(payload)
        except ValidationError as e:
            if len(self.invalid_examples) < MAX_EXAMPLES:
                self.invalid_examples.append("%s.conf: %s" % (action, e.message[:200]))
            return False
        except (OSError, ValueError, LookupError):  # no schema for that action: nothing to check
            pass
        return True

    def _stats(self, action: str) -> CallStats:
        st = self.calls.get(action)
        if st is None:
            st = self.calls[action] = CallStats()
        return st

    def take_window(self) -> Histogram:
        window, self.window = self.window, Histogram()
        return window


def _error_code(text: str) -> str:
    try:
        return str(json.loads(text)[2])
    except (ValueError, IndexError, TypeError):
        return "?"
