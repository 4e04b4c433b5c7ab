"""Install the Debian package into a Debian tree and run the agent there: the check that the
package installs offline and works (docs/raspberry-pi.md).

    python -m tools.check_deb --arch arm64                 # build the .deb, a bookworm arm64 tree, check
    python -m tools.check_deb --arch arm64 --deb dist/ocpp-agent_0.1.0_arm64.deb --tree /var/tmp/arm64

1. builds the package (tools/build_deb.py, for the tree's Python only) unless ``--deb`` names one;
2. makes a minimal Debian tree with ``mmdebstrap`` (``--variant=minbase``, python3-venv) for
   the architecture — another CPU's programs run under qemu-user through binfmt_misc
   (qemu-user-static; the handlers are registered here when missing) — or reuses ``--tree``;
3. installs the package there with ``dpkg -i`` in a chroot: no network involved, the
   maintainer scripts run (user, directories, the agent's venv from the shipped wheels);
4. runs ``ocpp-agent --version`` there, then ``ocpp-agent run`` (the install root's supervisor
   and its worker, as the user ocpp-agent, simulated board) against a test central system on
   this machine's loopback: BootNotification, then a plug-in and a card swipe through
   ``ocpp-agent sim`` give StartTransaction; the agent is stopped with SIGTERM and must end 0.

Prints each step with its time. Needs root (chroot), mmdebstrap, dpkg; for a foreign
architecture qemu-user-static. Exit 1 with the reason on failure.
"""

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from tools import build_deb

SUITE = "bookworm"
SUITE_PYTHON = "3.11"  # its python3
_BINFMT = "/proc/sys/fs/binfmt_misc"
_QEMU = {"arm64": "aarch64", "armhf": "arm"}
CONFIG = """[station]
id = "%(id)s"
board = "sim"
data_dir = "%(data)s"

[csms]
url = "%(url)s"
ocpp_version = "1.6"
reconnect_initial_s = 0.5
reconnect_max_s = 2.0

[status_page]
enabled = false
"""


class CheckError(RuntimeError):
    """A step of the check failed: which, and why."""


def _run(argv: list, what: str, timeout_s: float = 1200, **kw) -> str:
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout_s, **kw)
    except subprocess.TimeoutExpired:
        raise CheckError("%s took more than %d s" % (what, timeout_s)) from None
    if done.returncode != 0:
        raise CheckError("%s failed (exit %d):\n%s" % (what, done.returncode,
                                                        "\n".join(done.stdout.strip().splitlines()[-25:])))
    return done.stdout


def missing_tools(arch: str) -> list:
    """What this machine lacks for the check of ``arch`` (Debian package names)."""
    missing = [pkg for tool, pkg in (("mmdebstrap", "mmdebstrap"), ("dpkg-deb", "dpkg"), ("chroot", "coreutils"))
               if shutil.which(tool) is None]
    if arch != build_deb.host_arch() and not os.path.exists("/usr/libexec/qemu-binfmt/%s-binfmt-P" % _QEMU[arch]):
        missing.append("qemu-user-static")
    return missing


def ensure_binfmt(arch: str) -> None:
    """Register qemu-user for ``arch`` with binfmt_misc when it is not (no systemd-binfmt here)."""
    if arch == build_deb.host_arch():
        return
    name = "qemu-" + _QEMU[arch]
    if not os.path.isdir(os.path.join(_BINFMT, ".")) or not os.path.exists(os.path.join(_BINFMT, "register")):
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", _BINFMT], "mounting binfmt_misc")
    if not os.path.exists(os.path.join(_BINFMT, name)):
        with open("/usr/lib/binfmt.d/%s.conf" % name) as f, open(os.path.join(_BINFMT, "register"), "w") as reg:
            reg.write(f.read().strip())


def make_tree(tree: str, arch: str, say) -> None:
    ensure_binfmt(arch)
    say("mmdebstrap %s %s -> %s" % (SUITE, arch, tree))
    os.makedirs(os.path.dirname(os.path.abspath(tree)), exist_ok=True)  # mmdebstrap needs the parent
    _run(["mmdebstrap", "--variant=minbase", "--architectures=" + arch, "--include=python3-venv", "--mode=root",
          SUITE, tree], "mmdebstrap", timeout_s=1800)


def install(tree: str, deb: str) -> str:
    shutil.copy(deb, os.path.join(tree, "tmp", os.path.basename(deb)))
    return _run(["chroot", tree, "dpkg", "-i", "/tmp/" + os.path.basename(deb)], "dpkg -i in the tree",
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


async def sim_session(tree: str, station_id: str = "CP-DEB", timeout_s: float = 120, say=print) -> list:
    """Run the installed agent in ``tree`` against a test central system on the loopback
    (the chroot shares this machine's network); the actions it sent."""
    from tools.csms import TestCentralSystem

    work = os.path.join(tree, "tmp", "ocpp-agent-check")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "data"))
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",))
    await cs.start()
    inside = "/tmp/ocpp-agent-check"
    with open(os.path.join(work, "agent.toml"), "w") as f:
        f.write(CONFIG % {"id": station_id, "data": inside + "/data", "url": cs.url})
    _run(["chroot", tree, "chown", "-R", "ocpp-agent:ocpp-agent", inside], "chown")
    log_path = os.path.join(work, "agent.log")
    log = open(log_path, "w")
    # chroot execs the agent as the service's user (no process in between): SIGTERM goes to the
    # supervisor alone, as systemd's KillMode=mixed does.
    as_agent = ["chroot", "--userspec=ocpp-agent:ocpp-agent", "--groups=dialout,gpio", tree, "/usr/bin/ocpp-agent"]
    env = dict(os.environ, HOME="/var/lib/ocpp-agent")
    agent = subprocess.Popen(as_agent + ["run", "--config", inside + "/agent.toml"], stdout=log, env=env,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        h = await cs.wait_for_station(station_id, timeout_s=timeout_s)
        boot = await h.wait_for("BootNotification", timeout_s=timeout_s)
        say("  BootNotification %s firmware %s" % (boot.get("chargePointModel"), boot.get("firmwareVersion")))
        await h.wait_for("StatusNotification", timeout_s=timeout_s)
        for command in (["plug", "1"], ["swipe", "AABBCCDD"]):
            await asyncio.to_thread(_run, as_agent + ["sim", "--config", inside + "/agent.toml"] + command,
                                    "ocpp-agent sim %s" % " ".join(command), 120)
        start = await h.wait_for("StartTransaction", timeout_s=timeout_s)
        say("  StartTransaction idTag %s meterStart %s" % (start.get("idTag"), start.get("meterStart")))
        actions = [m.action for m in h.messages]
    except BaseException:
        log.flush()
        with open(log_path) as f:
            say("agent log:\n" + f.read()[-3000:])
        raise
    finally:
        if agent.poll() is None:
            os.kill(agent.pid, signal.SIGTERM)  # the supervisor passes it to its worker
        try:
            code = agent.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(agent.pid, signal.SIGKILL)
            code = agent.wait()
        log.close()
        await cs.stop()
    if code != 0:
        with open(log_path) as f:
            raise CheckError("the agent ended with %s after SIGTERM:\n%s" % (code, f.read()[-2000:]))
    return actions


def check(arch: str, *, deb: str | None = None, tree: str | None = None, keep: bool = False, say=print) -> dict:
    """The whole check; the seconds each step took."""
    if os.geteuid() != 0:
        raise CheckError("the check needs root (chroot, mmdebstrap --mode=root)")
    missing = missing_tools(arch)
    if missing:
        raise CheckError("missing: %s (apt-get install %s)" % (", ".join(missing), " ".join(missing)))
    times = {}
    work = tempfile.mkdtemp(prefix="ocpp-agent-check-")
    try:
        t0 = time.monotonic()
        if deb is None:
            say("building the package for %s (Python %s, %s's)" % (arch, SUITE_PYTHON, SUITE))
            deb = build_deb.build_deb(os.path.join(work, "out"), arch=arch, pythons=(SUITE_PYTHON,),
                                      say=lambda line: None)
            times["build .deb"] = time.monotonic() - t0
        if tree is None or not os.path.isfile(os.path.join(tree, "usr/bin/python3")):
            tree = tree or os.path.join(work, "tree")
            t0 = time.monotonic()
            make_tree(tree, arch, say)
            times["mmdebstrap"] = time.monotonic() - t0
        else:
            ensure_binfmt(arch)
        t0 = time.monotonic()
        say("dpkg -i %s" % os.path.basename(deb))
        install(tree, deb)
        times["dpkg -i"] = time.monotonic() - t0
        t0 = time.monotonic()
        version = _run(["chroot", tree, "/usr/bin/ocpp-agent", "--version"], "ocpp-agent --version").strip()
        say("  " + version)
        times["--version"] = time.monotonic() - t0
        t0 = time.monotonic()
        say("sim session against a test central system on the loopback")
        asyncio.run(sim_session(tree, say=say))
        times["sim session"] = time.monotonic() - t0
        times["version"] = version
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.check_deb", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="arm64", choices=sorted(build_deb.CPUS), help="the tree's architecture")
    p.add_argument("--deb", help="the package to check (default: build it)")
    p.add_argument("--tree", help="a Debian tree to use (made there when it has no python3)")
    p.add_argument("--keep", action="store_true", help="keep the temporary tree")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    try:
        times = check(args.arch, deb=args.deb, tree=args.tree, keep=args.keep)
    except (CheckError, build_deb.DebError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    print("ok: %s in a %s %s tree; %s; total %.0f s" % (
        times.pop("version"), SUITE, args.arch, ", ".join("%s %.0f s" % kv for kv in times.items()),
        time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
