"""The state of an agent update, shared by the versions involved and the supervisor:
``data_dir/update.json`` (atomic writes), read again at every start.

``status`` goes: ``trial`` (the new version is active and must prove itself by
``deadline``: BootNotification Accepted when ``needs_boot``, else a healthy start)
→ ``verified`` (written by the new version) → ``reported`` (the central system was
told: Installed); or ``trial`` → ``rolled_back`` (written by the supervisor: the new
version crashed, hung or could not connect; the old one reports the failure) →
``reported``. ``request_id`` and ``protocol`` say whom to tell.

Portable but for ``running_version`` (importlib.metadata) and the path checks.
"""

import os

from hal.runtime.storage import read_json, write_json_atomic

FILE = "update.json"
TRIAL, VERIFIED, ROLLED_BACK, REPORTED = "trial", "verified", "rolled_back", "reported"


def install_root_of(prefix: str) -> str | None:
    """The install root an interpreter prefix ``<root>/versions/<version>`` lives in (it has
    a ``current`` link), None for any other installation (a checkout, pip, a fleet)."""
    versions = os.path.dirname(os.path.realpath(prefix))  # also when reached through <root>/current
    root = os.path.dirname(versions)
    if os.path.basename(versions) == "versions" and os.path.islink(os.path.join(root, "current")):
        return root
    return None


def running_version() -> str:
    """The version of the agent package running."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ocpp-agent")
    except PackageNotFoundError:
        return "0+unknown"


def read_state(path: str) -> dict | None:
    state = read_json(path, None)
    return state if isinstance(state, dict) and state.get("status") else None


def write_state(path: str, state: dict) -> None:
    write_json_atomic(path, state, mode=0o600)


def begin_trial(path: str, *, from_version: str, to_version: str, now: float, deadline: float,
                needs_boot: bool, request_id=None, protocol: str | None = None) -> dict:
    state = {"status": TRIAL, "from": from_version, "to": to_version, "since": now, "deadline": deadline,
             "needs_boot": needs_boot, "request_id": request_id, "protocol": protocol, "reason": ""}
    write_state(path, state)
    return state


def mark(path: str, status: str, **fields) -> dict | None:
    """Move the state file to ``status`` (with ``fields``); None when there is none."""
    state = read_state(path)
    if state is None:
        return None
    state.update(fields, status=status)
    write_state(path, state)
    return state
