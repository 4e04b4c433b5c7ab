#!/usr/bin/python3
"""The Raspberry Pi image's boot-time configuration from its FAT partition (docs/raspberry-pi.md).

Runs at every boot before the agent (ocpp-image-bootconfig.service), with the system's
python3 and nothing else of this repository:

1. first boot: commits the machine id systemd made (the root is read-only: remounted
   read-write for that alone) and grows the data partition to the end of the card;
2. ``ocpp-agent.toml`` on the boot partition, written by the owner from any PC, is applied:
   the agent's sections through ``ocpp-agent config import`` (validated, atomic, 0600, as the
   service's user), ``[wifi]`` to wpa_supplicant's file on the data partition (the passphrase
   stored as its derived key), ``[ssh]`` keys to the data partition (SSH stays off without
   them; key login only). Then the file — it holds secrets — is deleted from the FAT
   partition and ``ocpp-agent-result.txt`` says what was applied, or what is wrong (the file
   is then kept for the owner to fix, and applied again at the next boot);
3. starts Wi-Fi and SSH when they are configured.

    /usr/bin/python3 /usr/local/lib/ocpp-image/bootconfig.py           # as the service runs it
    python3 tools/image/bootconfig.py --boot B --data D --agent-config F --agent-cmd "…" --no-system
"""

import argparse
import hashlib
import os
import shlex
import subprocess
import sys
import time
import tomllib

OWNER_FILE = "ocpp-agent.toml"
RESULT_FILE = "ocpp-agent-result.txt"
WIFI_FILE = "network/wpa_supplicant-wlan0.conf"  # /etc/wpa_supplicant/wpa_supplicant-wlan0.conf links here
SSH_KEYS_FILE = "ssh/authorized_keys"  # sshd: AuthorizedKeysFile (tools/image/sshd.conf)
SSH_HOST_KEYS = ("ssh/ssh_host_ed25519_key", "ssh/ssh_host_ecdsa_key")
GROWN_MARK = ".image/grown"
IMAGE_SECTIONS = ("wifi", "ssh")
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
AGENT_CMD = "runuser -u ocpp-agent -- /usr/bin/ocpp-agent"


class BadSection(ValueError):
    """A [wifi] or [ssh] value the image cannot use: which, and why."""


def wpa_supplicant_conf(wifi: dict) -> str:
    """wpa_supplicant's file for ``[wifi]`` (ssid, password — none for an open network —,
    country): the SSID hex-encoded (any byte is safe), the passphrase as its PSK (PBKDF2),
    so the file holds no passphrase and no quoting can break it."""
    unknown = set(wifi) - {"ssid", "password", "country"}
    if unknown:
        raise BadSection("wifi.%s: unknown key (known: ssid, password, country)" % sorted(unknown)[0])
    ssid, password, country = wifi.get("ssid"), wifi.get("password", ""), wifi.get("country", "")
    if not isinstance(ssid, str) or not 1 <= len(ssid.encode()) <= 32:
        raise BadSection("wifi.ssid: give the network's name (1 to 32 bytes)")
    if not isinstance(country, str) or len(country) != 2 or not country.isalpha() or not country.isascii():
        raise BadSection("wifi.country: give the two-letter country code (e.g. \"DE\"): it sets the legal channels")
    if not isinstance(password, str) or (password and not (8 <= len(password) <= 63 and password.isascii())):
        raise BadSection("wifi.password: WPA passphrases are 8 to 63 ASCII characters (\"\" for an open network)")
    lines = ["# Written by ocpp-image-bootconfig from the boot partition's %s; replaced when one is given." % OWNER_FILE,
             "ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev", "update_config=0",
             "country=%s" % country.upper(), "", "network={", "    ssid=%s" % ssid.encode().hex()]
    if password:
        psk = hashlib.pbkdf2_hmac("sha1", password.encode(), ssid.encode(), 4096, 32).hex()
        lines += ["    key_mgmt=WPA-PSK", "    psk=%s" % psk]
    else:
        lines += ["    key_mgmt=NONE"]
    return "\n".join(lines + ["}", ""])


def authorized_keys(ssh: dict) -> str:
    """root's authorized_keys for ``[ssh] authorized_keys = ["ssh-ed25519 AAAA… me@pc", …]``
    (an empty list turns SSH off again)."""
    unknown = set(ssh) - {"authorized_keys"}
    if unknown:
        raise BadSection("ssh.%s: unknown key (known: authorized_keys)" % sorted(unknown)[0])
    keys = ssh.get("authorized_keys", [])
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(keys, list):
        raise BadSection("ssh.authorized_keys: give a list of public keys")
    for n, key in enumerate(keys, 1):
        parts = key.split() if isinstance(key, str) else []
        if len(parts) < 2 or parts[0] not in KEY_TYPES or "\n" in key:
            raise BadSection("ssh.authorized_keys: key %d is not a public key line (%s AAAA… comment)" % (
                n, " / ".join(KEY_TYPES[:2])))
    return "".join(key.strip() + "\n" for key in keys)


def write_private(path: str, text: str) -> None:
    """``text`` to ``path``, mode 0600, atomically and durably (a power cut leaves old or new)."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _sync_dir(os.path.dirname(path))


def _sync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BootConfig:
    """One boot's work; ``system`` False leaves the machine alone (machine id, partition,
    services): what the tests run."""

    def __init__(self, boot: str, data: str, agent_config: str, agent_cmd: str, system: bool = True,
                 say=print) -> None:
        self.boot, self.data, self.agent_config = boot, data, agent_config
        self.agent_cmd, self.system, self.say = shlex.split(agent_cmd), system, say

    def run(self) -> int:
        if self.system:
            self.commit_machine_id()
            self.grow_data_partition()
        problems = self.apply_owner_file()
        if self.system:
            self.start_services()
        return 1 if problems else 0

    # --------------------------------------------------------------- the owner's file
    def apply_owner_file(self) -> list:
        """The problems found (none: applied and deleted); nothing to do without the file."""
        path = os.path.join(self.boot, OWNER_FILE)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return []
        applied, problems = [], []
        try:
            doc = tomllib.loads(raw.decode("utf-8-sig"))  # Windows editors add a BOM
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            problems.append("%s is not valid TOML: %s" % (OWNER_FILE, e))
            doc = None
        if doc is not None:
            self._apply_agent(raw.decode("utf-8-sig"), doc, applied, problems)
            for section, apply in (("wifi", self._apply_wifi), ("ssh", self._apply_ssh)):
                if section in doc:
                    try:
                        apply(doc[section] if isinstance(doc[section], dict) else {})
                        applied.append("[%s]" % section)
                    except (BadSection, OSError) as e:
                        problems.append(str(e))
        self._report(applied, problems)
        if not problems:
            os.remove(path)  # it holds the password: gone from the card once applied
            _sync_dir(self.boot)
        return problems

    def _apply_agent(self, text: str, doc: dict, applied: list, problems: list) -> None:
        if not set(doc) - set(IMAGE_SECTIONS):
            return
        argv = self.agent_cmd + ["config", "import", "--config", self.agent_config, "-"]
        for section in IMAGE_SECTIONS:
            argv += ["--ignore-section", section]
        try:
            done = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            problems.append("the agent's configuration: %s" % e)
            return
        if done.returncode != 0:
            problems.append((done.stderr.strip() or done.stdout.strip() or "exit %d" % done.returncode)
                            .replace("error: standard input: ", "%s: " % OWNER_FILE))
        else:
            applied.append(done.stdout.strip())

    def _apply_wifi(self, wifi: dict) -> None:
        write_private(os.path.join(self.data, WIFI_FILE), wpa_supplicant_conf(wifi))

    def _apply_ssh(self, ssh: dict) -> None:
        # the host keys are made by start_services, which runs next at every boot
        write_private(os.path.join(self.data, SSH_KEYS_FILE), authorized_keys(ssh))

    def _report(self, applied: list, problems: list) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        lines = ["%s, %s" % (OWNER_FILE, stamp)]
        if problems:
            lines += ["NOT APPLIED — fix %s on this partition and start the charger again:" % OWNER_FILE]
            lines += ["  " + p for p in problems]
        if applied:
            lines += ["applied:"] + ["  " + a for a in applied]
        if not problems:
            lines += ["%s was deleted from this partition (it held secrets)." % OWNER_FILE]
        text = "\r\n".join(lines) + "\r\n"  # read on any PC
        for line in lines:
            self.say(line)
        path = os.path.join(self.boot, RESULT_FILE)
        with open(path, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    # --------------------------------------------------------------- the machine
    def commit_machine_id(self) -> None:
        """The machine id systemd made at this first boot, written to the read-only root."""
        if subprocess.run(["mountpoint", "-q", "/etc/machine-id"]).returncode != 0:
            return  # committed already
        self.say("first boot: committing the machine id")
        subprocess.run(["mount", "-o", "remount,rw", "/"], check=True)
        try:
            subprocess.run(["systemd-machine-id-setup", "--commit"], check=True)
        finally:
            # The root stays read-only in use: a power cut cannot damage it.
            if subprocess.run(["mount", "-o", "remount,ro", "/"]).returncode != 0:
                self.say("the root file system stays writable until the next boot")

    def grow_data_partition(self) -> None:
        """The data partition (the card's last) grown to the card's end, once."""
        mark = os.path.join(self.data, GROWN_MARK)
        if os.path.exists(mark):
            return
        source = subprocess.run(["findmnt", "-no", "SOURCE", self.data], capture_output=True, text=True).stdout.strip()
        name = os.path.basename(source)
        try:
            with open("/sys/class/block/%s/partition" % name) as f:
                number = f.read().strip()
            disk = os.path.basename(os.path.dirname(os.path.realpath("/sys/class/block/%s" % name)))
        except OSError:
            self.say("data partition %r: not a partition, not grown" % source)
            return
        grow = subprocess.run(["growpart", "/dev/" + disk, number], capture_output=True, text=True)
        if grow.returncode == 0:  # 1: NOCHANGE (already at the end)
            subprocess.run(["resize2fs", source], capture_output=True, check=True)
        self.say("data partition %s: %s" % (source, (grow.stdout.strip() or grow.stderr.strip())))
        os.makedirs(os.path.dirname(mark), exist_ok=True)
        with open(mark, "w"):
            pass

    def _ssh_host_keys(self) -> None:
        for key, kind in zip(SSH_HOST_KEYS, ("ed25519", "ecdsa")):
            path = os.path.join(self.data, key)
            if not os.path.exists(path):
                subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "", "-f", path], check=True)
                self.say("made SSH host key %s" % subprocess.run(
                    ["ssh-keygen", "-l", "-f", path], capture_output=True, text=True).stdout.strip())

    def start_services(self) -> None:
        if os.path.exists(os.path.join(self.data, WIFI_FILE)):
            subprocess.run(["systemctl", "start", "--no-block", "wpa_supplicant@wlan0.service"])
        keys = os.path.join(self.data, SSH_KEYS_FILE)
        if os.path.exists(keys) and os.path.getsize(keys) > 0:
            self._ssh_host_keys()
            subprocess.run(["systemctl", "start", "--no-block", "ssh.service"])
            self.say("SSH on (key login only)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--boot", default="/boot/firmware", help="the FAT partition's mount point")
    p.add_argument("--data", default="/data", help="the data partition's mount point")
    p.add_argument("--agent-config", default="/etc/ocpp-agent/agent.toml")
    p.add_argument("--agent-cmd", default=AGENT_CMD, help="how to run the agent's CLI")
    p.add_argument("--no-system", action="store_true", help="leave machine id, partitions and services alone")
    args = p.parse_args(argv)
    return BootConfig(args.boot, args.data, args.agent_config, args.agent_cmd, system=not args.no_system).run()


if __name__ == "__main__":
    sys.exit(main())
