"""Secrets on disk that others can read: found at start (a warning each) and by ``ocpp-agent doctor``.

The agent writes its own files 0600 (hal/runtime/storage.py), but an owner's
editor, ``cp`` or a backup restore leaves the umask's 0644, and a data
directory others may write lets them swap the agent's files. Each finding names
the file and the command that fixes it. The agent goes on running: refusing to
start over a file mode would leave a charger dead for a fixable nuisance.
"""

import logging
import os
import stat

log = logging.getLogger(__name__)

# Files in data_dir that hold secrets or drivers' personal data (id tags). Names, not
# imports of their owners: this runs at every start and must not load those modules.
SECRET_DATA_FILES = (
    "endpoint.json",  # csms.password of the central system in use and the one to fall back to
    "network-profiles.json",  # OCPP SetNetworkProfile slots, with their passwords
    "ocpp-config.json",  # 1.6 keys, AuthorizationKey among them
    "device-model.json",  # 2.0.1 variables, BasicAuthPassword among them
    "settings.json",
    "auth-cache.json",  # id tags
    "local-list.json",
    "auth-cache.json.stash",
    "local-list.json.stash",
    "journal.sqlite",  # transactions: id tags and meter values
)
SECURITY_DIR = "security"  # data_dir/security (agent/security/context.py): 0700, and every *.key in it 0600


def config_holds_secret(config) -> bool:
    return bool(config.csms["password"] or config.status_page["password"])


def file_mode_findings(config) -> list:
    """One sentence per problem: what is open to whom, and the ``chmod`` that fixes it."""
    findings = []
    if config_holds_secret(config):
        problem = _open_to_others(config.path, 0o077)
        if problem:
            findings.append("%s holds a password and is %s; fix: chmod 600 %s" % (config.path, problem, config.path))
    for name in SECRET_DATA_FILES:
        path = os.path.join(config.data_dir, name)
        problem = _open_to_others(path, 0o077)
        if problem:
            findings.append("%s is %s; fix: chmod 600 %s" % (path, problem, path))
    security = os.path.join(config.data_dir, SECURITY_DIR)
    problem = _open_to_others(security, 0o077)
    if problem:
        findings.append("directory %s is %s; fix: chmod 700 %s" % (security, problem, security))
    for path in _key_files(security):
        problem = _open_to_others(path, 0o077)
        if problem:
            findings.append("private key %s is %s; fix: chmod 600 %s" % (path, problem, path))
    problem = _open_to_others(config.data_dir, 0o022)
    if problem:
        findings.append("data directory %s is %s; fix: chmod go-w %s" % (config.data_dir, problem, config.data_dir))
    return findings


def warn_about_file_modes(config) -> list:
    """Log each finding as a warning; returns them."""
    findings = file_mode_findings(config)
    for finding in findings:
        log.warning("file mode: %s", finding)
    return findings


def _key_files(directory: str) -> list:
    """The private keys under ``directory`` (the status page's, the charger's identity)."""
    found = []
    for root, _dirs, files in os.walk(directory):
        found.extend(os.path.join(root, name) for name in sorted(files) if name.endswith(".key"))
    return found


def _open_to_others(path: str, bits: int) -> str:
    """How ``path`` is open to group/others within ``bits`` ("readable by group and others
    (mode 0644)"); "" when it is not, or does not exist."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return ""
    found = mode & bits
    if not found:
        return ""
    how = [what for what, mask in (("readable", 0o044), ("writable", 0o022)) if found & mask]
    who = [whom for whom, mask in (("group", 0o070), ("others", 0o007)) if found & mask]
    return "%s by %s (mode %04o)" % (" and ".join(how), " and ".join(who), mode)
