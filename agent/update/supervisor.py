"""The supervisor of an agent installed in an install root: ``ocpp-agent run`` there runs
the active version (``<root>/current``) as a child process and

* starts it again when it ends for a Reset (EXIT_RESTART) or to become a newly
  installed version (EXIT_UPDATE), and after a crash (with a growing pause);
* watches a version on trial (agent/update/state.py): if it crashes, hangs or has
  not proven itself (BootNotification Accepted, or a healthy start offline) by its
  deadline, the supervisor stops it, switches ``current`` back to the previous
  version and starts that one, which reports the failure to the central system;
* passes SIGTERM and SIGINT on to the child and ends with it.

Under systemd (tools/deb/ocpp-agent.service: ``Type=notify``, ``NotifyAccess=all``) the
supervisor is the service's main process: the worker sends READY=1 and the watchdog pings
(agent/app/systemd.py); the supervisor sends a STATUS line and one WATCHDOG=1 as it starts
each child (a fresh WatchdogSec for it to come up) and before a crash pause (shorter than
WatchdogSec), and STOPPING=1 when it stops. ``notifier``: an agent.app.systemd.Notifier.

The supervisor is the old version's code while the new one is tried, so a new
version that cannot even start is still undone. Time comes from ``now`` and
``sleep`` (injectable); each wait is bounded.

CPython-only (subprocesses, signals).
"""

import logging
import signal
import subprocess
import time

from agent.update import state as update_state

log = logging.getLogger(__name__)

EXIT_RESTART = 75  # the agent ended for a Reset: start it again
EXIT_UPDATE = 76  # the agent made a new version active: start that one, on trial
POLL_S = 0.5
STOP_GRACE_S = 15.0  # SIGTERM, then SIGKILL
CRASH_PAUSE_S = (1.0, 60.0)  # a crashing agent is started again after 1 s, doubling up to 60 s


class Supervisor:
    """Runs the active version of ``root`` with ``args`` (after ``run --worker``)."""

    def __init__(self, root, args: list, state_path: str, *, verify_timeout_s: float = 300.0, now=time.time,
                 sleep=time.sleep, spawn=subprocess.Popen, notifier=None) -> None:
        self.verify_timeout_s = verify_timeout_s  # a trial without a deadline yet (``ocpp-agent update``) gets one
        self.root = root
        self.args = list(args)
        self.state_path = state_path
        self.now = now
        self.sleep = sleep
        self.spawn = spawn
        self.child = None
        self.stopping = False
        self.notifier = notifier

    def _notify(self, *lines: str) -> None:
        if self.notifier is not None:
            self.notifier.notify(*lines)

    def stop(self, signum=signal.SIGTERM, _frame=None) -> None:
        """Stop: the child gets the signal, the supervisor ends with it."""
        if not self.stopping:
            self._notify("STOPPING=1")
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.stop)
        pause_s = CRASH_PAUSE_S[0]
        while not self.stopping:
            trial = self._trial()
            if trial is not None and self.now() >= trial["deadline"]:
                self._roll_back(trial, "not verified before its deadline (the agent was restarted meanwhile)")
                continue
            version = self.root.current_version()
            log.info("starting ocpp-agent %s%s", version, " (on trial)" if trial else "")
            self._notify("WATCHDOG=1", "STATUS=starting ocpp-agent %s%s" % (version, " (on trial)" if trial else ""))
            self.child = self.spawn([self.root.executable(), "run", "--worker"] + self.args)
            code = self._wait(trial)
            if self.stopping:
                return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code
            if trial is not None and self._still_on_trial(trial):
                why = "it stopped with exit status %s" % code if code != "timeout" else \
                    "no BootNotification Accepted before its deadline" if trial.get("needs_boot") else \
                    "it did not run healthy before its deadline"
                self._roll_back(trial, why, kind="verification" if code == "timeout" else "installation")
                continue
            if code in (EXIT_RESTART, EXIT_UPDATE):
                pause_s = CRASH_PAUSE_S[0]
                continue
            if code == 0:
                return 0
            log.error("ocpp-agent %s stopped with exit status %s: starting it again in %.0f s", version, code, pause_s)
            self._notify("WATCHDOG=1", "STATUS=ocpp-agent %s stopped with exit status %s: starting it again in %.0f s"
                         % (version, code, pause_s))
            self.sleep(pause_s)
            pause_s = min(pause_s * 2, CRASH_PAUSE_S[1])
        return 0

    def _trial(self) -> dict | None:
        st = update_state.read_state(self.state_path)
        if st is None or st["status"] != update_state.TRIAL or st["to"] != self.root.current_version():
            return None
        if st.get("deadline") is None:  # installed while the agent was stopped: the trial starts now
            st = update_state.mark(self.state_path, update_state.TRIAL, deadline=self.now() + self.verify_timeout_s)
        return st

    def _still_on_trial(self, trial: dict) -> bool:
        """Whether the trial begun with this run still stands: not verified, and not ended
        otherwise meanwhile (``ocpp-agent update --rollback`` rolls back by itself: a second
        rollback would switch to the version just left)."""
        st = update_state.read_state(self.state_path)
        return st is not None and st["status"] == update_state.TRIAL and st["to"] == trial["to"]

    def _wait(self, trial):
        """The child's exit status, or "timeout" when a trial's deadline passed unverified
        (the child is stopped then)."""
        while True:
            code = self.child.poll()
            if code is not None:
                return code
            if trial is not None and not self.stopping and self.now() >= trial["deadline"] and \
                    self._still_on_trial(trial):
                log.error("version %s not verified by its deadline: stopping it", trial["to"])
                self._terminate()
                return "timeout"
            self.sleep(POLL_S)

    def _terminate(self) -> None:
        self.child.terminate()
        try:
            self.child.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()

    def _roll_back(self, trial: dict, why: str, kind: str = "verification") -> None:
        previous = self.root.roll_back()
        log.error("update to %s failed (%s): back to %s", trial["to"], why, previous)
        update_state.mark(self.state_path, update_state.ROLLED_BACK, reason=why, reason_kind=kind,
                          rolled_back_at=self.now())
