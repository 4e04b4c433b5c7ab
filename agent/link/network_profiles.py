"""Network connection profiles: numbered slots of central system settings and the
order to try them in (OCPP 2.0.1 B09/B10: SetNetworkProfile and
OCPPCommCtrlr.NetworkConfigurationPriority).

A slot holds how to reach one central system: its URL, security profile and
message timeout. The slot in use (``active``) is the endpoint manager's current
settings (agent/link/switch.py), whatever changed them (the configuration file,
``ocpp-agent csms set``): its stored profile is written only when the station
moves away from it, so a later priority can bring it back. A new priority is
applied at the next start (it answers RebootRequired): the first slot becomes a
switch like any other — drain, boot, and back to the slot that worked if the new
one does not accept the charger (B10.FR.07).

Security profiles as 2.0.1 numbers them (agent/security/profiles.py): 1 Basic
auth without TLS (ws://), 2 TLS with Basic auth (wss://), 3 TLS with the
charger's certificate. A profile lower than the one in use is refused
(B09.FR.04), 3 to 2 only with SecurityCtrlr.AllowSecurityProfileDowngrade (2.0.1
errata). What a profile needs (a password, a CSMS root certificate, the
charger's certificate) is checked when a priority would use it (A05.FR.02/03),
and once the station connected with a higher profile, the slots of lower ones
leave the priority (TC_A_19).

Portable: no I/O but the one JSON file.
"""

import logging

from agent.link.endpoint import validate_csms_url
from agent.security import profiles
from hal.runtime.storage import read_json, write_json_atomic

log = logging.getLogger(__name__)

FILE = "network-profiles.json"
SLOTS = (1, 2, 3, 4)  # the configuration slots this charger has
FIRST_SLOT = 1  # the slot of the configuration file's central system before any profile was set


def lower_problem(level: int, in_use: int, allow_downgrade: bool) -> str:
    """Why ``level`` is too low next to the profile ``in_use`` ("" when it is not)."""
    if level < in_use and not (allow_downgrade and in_use == profiles.TLS_CLIENT and level == profiles.TLS_BASIC):
        return "security profile %d is lower than the %d in use" % (level, in_use)
    return ""


def profile_problem(slot, profile: dict, in_use: int, active_slot: int, allow_downgrade: bool = False) -> str:
    """Why ``profile`` cannot be stored in ``slot`` ("" if it can). ``profile``:
    url, security_profile, ocpp_version ("2.0.1"), transport ("JSON");
    ``in_use``: the security profile of the connection now."""
    if slot not in SLOTS:
        return "slot %s does not exist (slots %d-%d)" % (slot, SLOTS[0], SLOTS[-1])
    if slot == active_slot:
        return "slot %d is the one in use" % slot
    if profile.get("transport") != "JSON":
        return "only OCPP-J (JSON) is spoken"
    if profile.get("ocpp_version") != "2.0.1":
        return "only OCPP 2.0.1 profiles can be set over OCPP 2.0.1"
    url = profile.get("url", "")
    problem = validate_csms_url(url)
    if problem:
        return problem
    level = profile.get("security_profile")
    if level not in (profiles.BASIC, profiles.TLS_BASIC, profiles.TLS_CLIENT):
        return "unknown security profile %r" % (level,)
    return profiles.scheme_problem(url, level) or lower_problem(level, in_use, allow_downgrade)


class NetworkProfiles:
    """The slots, the priority set for them and which slot is in use; saved at each change."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.slots: dict = {}  # slot -> profile dict (url, security_profile, message_timeout_s, …)
        self.priority: list = [FIRST_SLOT]  # NetworkConfigurationPriority as last set
        self.applied: list = [FIRST_SLOT]  # the priority a start acted on
        self.active = FIRST_SLOT  # the slot of the settings in use
        self.previous: int | None = None  # the slot a pending move came from (for its rollback)
        data = read_json(path, None) if path else None
        if isinstance(data, dict):
            self.slots = {int(k): v for k, v in (data.get("slots") or {}).items()
                          if str(k).isdigit() and isinstance(v, dict)}
            self.priority = _slots(data.get("priority")) or self.priority
            self.applied = _slots(data.get("applied")) or self.applied
            self.active = data.get("active") if data.get("active") in SLOTS else FIRST_SLOT
            self.previous = data.get("previous") if data.get("previous") in SLOTS else None

    def _save(self) -> None:
        if self.path:
            write_json_atomic(self.path, {"version": 1, "slots": {str(k): v for k, v in self.slots.items()},
                                          "priority": self.priority, "applied": self.applied,
                                          "active": self.active, "previous": self.previous}, mode=0o600)

    def set_profile(self, slot: int, profile: dict, in_use: int, allow_downgrade: bool = False) -> str:
        """Store ``profile`` in ``slot``; the problem ("" when stored)."""
        problem = profile_problem(slot, profile, in_use, self.active, allow_downgrade)
        if problem:
            log.warning("network profile for slot %s refused: %s", slot, problem)
            return problem
        self.slots[slot] = dict(profile)
        self._save()
        log.info("network profile slot %d: %s (security profile %d)", slot, profile["url"],
                 profile["security_profile"])
        return ""

    def priority_problem(self, slots: list, in_use: int, needs=None, allow_downgrade: bool = False) -> str:
        """Why ``slots`` cannot be the priority ("" if it can): every slot set (or in use),
        none below the security profile in use, and what each needs there (``needs``:
        callable(level) -> the missing prerequisite, "" when none)."""
        if not slots or len(set(slots)) != len(slots):
            return "empty or repeated slots"
        for slot in slots:
            if slot == self.active:
                continue
            profile = self.slots.get(slot)
            if profile is None:
                return "slot %d has no network profile" % slot
            level = profile["security_profile"]
            problem = lower_problem(level, in_use, allow_downgrade) or (needs(level) if needs else "")
            if problem:
                return "slot %d: %s" % (slot, problem)
        return ""

    def drop_below(self, level: int) -> None:
        """The station connected with profile ``level``: slots of lower profiles leave the
        priority (A05: it does not go back to them by itself)."""
        kept = [s for s in self.priority if s == self.active or s not in self.slots
                or self.slots[s]["security_profile"] >= level]
        if kept != self.priority:
            log.info("NetworkConfigurationPriority %s -> %s: slots below security profile %d removed",
                     self.priority, kept, level)
            self.priority = self.applied = kept
            self._save()

    def set_priority(self, slots: list) -> None:
        self.priority = list(slots)
        self._save()

    def to_apply(self):
        """(slot, profile) a start should move to: the first of a priority not applied yet
        when it is not the slot in use; else None. Marks the priority applied."""
        if self.priority == self.applied:
            return None
        self.applied = list(self.priority)
        self._save()
        first = self.priority[0]
        if first == self.active or first not in self.slots:
            return None
        return first, self.slots[first]

    def moved(self, slot: int, leaving: dict) -> None:
        """The station now uses ``slot``; ``leaving``: the profile of the slot it leaves."""
        self.slots[self.active] = dict(leaving)
        self.previous, self.active = self.active, slot
        self._save()

    def rolled_back(self) -> None:
        """The move failed: back on the slot it came from."""
        if self.previous is not None:
            self.active, self.previous = self.previous, None
            self._save()

    def confirmed(self) -> None:
        if self.previous is not None:
            self.previous = None
            self._save()


def _slots(value) -> list:
    return [v for v in value if v in SLOTS] if isinstance(value, list) else []
