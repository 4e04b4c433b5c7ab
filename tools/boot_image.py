"""Boot the charger image under QEMU and prove it works with only the boot partition's file
(docs/raspberry-pi.md): the slow proof of tools/build_image.py, outside the default CI run.

    python -m tools.boot_image dist/ocpp-agent-0.1.0-trixie-arm64.img

1. copies the image (sparse) and makes the copy 1 GiB larger, as a bigger SD card would be;
2. writes ``ocpp-agent.toml`` on its FAT partition (``mcopy``, no mount) — a station id, the URL
   of a test central system on this machine's loopback as the guest sees it (QEMU's user
   networking: 10.0.2.2), a Basic-auth password the central system checks, board ``sim``, and
   an SSH key made for this run;
3. boots it: ``qemu-system-aarch64 -M virt -cpu cortex-a72`` (software emulation), Debian's arm64
   kernel and initrd taken from the FAT partition, the image as a virtio disk, the guest's SSH
   port forwarded to a loopback port here;
4. waits for the BootNotification with that station id, then over SSH (key only) reads what
   the first boot did (the file gone from the card, the configuration 0600, the root read-only,
   the data partition grown, a machine id, no failed unit) and kills the agent's main process
   with SIGKILL: systemd must bring it back (a new BootNotification, NRestarts 1);
5. updates the agent from the central system: this repository built as the next version
   (tools/build_bundle.py, arm64 wheels), served over HTTP from here, UpdateFirmware: Installed,
   and the new version's BootNotification (``--no-update`` skips it);
6. starts a session (``ocpp-agent sim`` plug and swipe), cuts the power (QEMU killed), boots
   again: the session is closed once with reason PowerLoss; then powers the guest off.

``--wear-minutes M`` measures, before the power cut, what the card's partitions are written,
idle for M minutes and charging (the session cut in step 6) for M more: the SD-card wear
figures of docs/raspberry-pi.md. ``--page-seconds S`` measures the web page on the guest with
tools/page_watch.py (a headless Chromium here, through an SSH tunnel): bytes per view and the
agent service's CPU over S seconds watched and S not, during a session.

Prints each step with seconds since QEMU started; the guest's console goes to
``--console`` (default: in the work directory, shown on failure). Exit 1 with the reason.
Needs qemu-system-arm, mtools, fdisk (sfdisk), openssh-client.
"""

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from tools.check_deb import CheckError

STATION_ID = "CP-QEMU-1"
PASSWORD = "boot-partition-secret"
GUEST_HOST = "10.0.2.2"  # the host's loopback, from inside QEMU's user networking


def missing_tools() -> list:
    need = (("qemu-system-aarch64", "qemu-system-arm"), ("mcopy", "mtools"), ("sfdisk", "fdisk"),
            ("ssh", "openssh-client"), ("ssh-keygen", "openssh-client"))
    return sorted({pkg for tool, pkg in need if shutil.which(tool) is None})


def partitions(image: str) -> list:
    """[(start byte, size bytes)] of the image's partitions."""
    table = json.loads(subprocess.run(["sfdisk", "--json", image], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]
    return [(p["start"] * 512, p["size"] * 512) for p in table["partitions"]]


def fat(image: str) -> str:
    """mtools' name of the image's FAT partition."""
    return "%s@@%d" % (image, partitions(image)[0][0])


def owner_file(url: str, public_key: str) -> str:
    return ('[station]\nid = "%s"\nboard = "sim"\n\n[csms]\nurl = "%s"\npassword = "%s"\nocpp_version = "1.6"\n\n'
            '[ssh]\nauthorized_keys = ["%s"]\n') % (STATION_ID, url, PASSWORD, public_key.strip())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Guest:
    """The QEMU process and an SSH client to it."""

    def __init__(self, work: str, image: str, console: str, memory_mib: int, cpus: int) -> None:
        self.work, self.image, self.console = work, image, console
        self.key = os.path.join(work, "id_ed25519")
        self.ssh_port = _free_port()
        self.memory_mib, self.cpus = memory_mib, cpus
        self.process = None
        self.started = 0.0

    def boot_files(self) -> tuple:
        listing = subprocess.run(["mdir", "-b", "-i", fat(self.image), "::/"], capture_output=True, text=True,
                                 check=True).stdout.split()
        names = [os.path.basename(n) for n in listing]
        out = []
        for prefix in ("vmlinuz-", "initrd.img-"):
            found = sorted(n for n in names if n.startswith(prefix))
            if not found:
                raise CheckError("no %s* on the image's FAT partition" % prefix)
            dest = os.path.join(self.work, prefix.rstrip("-"))
            subprocess.run(["mcopy", "-o", "-i", fat(self.image), "::/" + found[-1], dest], check=True)
            out.append(dest)
        return tuple(out)

    def start(self) -> None:
        kernel, initrd = self.boot_files()
        argv = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", str(self.cpus),
                "-m", str(self.memory_mib), "-kernel", kernel, "-initrd", initrd,
                "-append", "root=LABEL=RASPIROOT rootwait console=ttyAMA0 net.ifnames=0 fsck.repair=yes",
                "-drive", "file=%s,if=none,format=raw,id=disk,cache=unsafe" % self.image,
                "-device", "virtio-blk-pci,drive=disk",
                "-netdev", "user,id=net,hostfwd=tcp:127.0.0.1:%d-:22" % self.ssh_port,
                "-device", "virtio-net-pci,netdev=net", "-device", "virtio-rng-pci",
                "-display", "none", "-monitor", "none", "-serial", "file:" + self.console, "-no-reboot"]
        self.started = time.monotonic()
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)

    def since(self) -> float:
        return time.monotonic() - self.started

    def ssh_argv(self, *args) -> list:
        return ["ssh", "-i", self.key, "-p", str(self.ssh_port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=20"] + list(args) + ["root@127.0.0.1"]

    def ssh(self, command: str, timeout_s: float = 60) -> str:
        done = subprocess.run(self.ssh_argv() + [command], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout_s)
        if done.returncode != 0:
            raise CheckError("ssh %r: exit %d: %s" % (command, done.returncode, done.stderr.strip()))
        return done.stdout.strip()

    def password_login_refused(self) -> bool:
        argv = self.ssh_argv("-o", "PubkeyAuthentication=no") + ["true"]
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        return done.returncode == 255 and "Permission denied" in done.stderr

    def stop(self, timeout_s: float = 120) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def _written_kib(guest: Guest) -> dict:
    """KiB written so far to each partition of the guest's card (the kernel's block statistics)."""
    out = guest.ssh("for p in 1 2 3; do echo $p $(cut -c1-200 /sys/class/block/vda$p/stat); done")
    return {{"1": "boot", "2": "root", "3": "data"}[line.split()[0]]: int(line.split()[7]) // 2
            for line in out.splitlines()}


async def start_session(guest: Guest, h) -> None:
    """An EV plugged in and a tag swiped on the guest's simulated board: StartTransaction."""
    agent = "runuser -u ocpp-agent -- ocpp-agent sim --config /etc/ocpp-agent/agent.toml "
    mark = len(h.messages)
    await asyncio.to_thread(guest.ssh, agent + "plug 1")
    await asyncio.to_thread(guest.ssh, agent + "swipe AABBCCDD")
    await h.wait_for("StartTransaction", timeout_s=120, start_index=mark)


async def measure_wear(guest: Guest, h, minutes: float, say) -> dict:
    """KiB per hour written to each partition, idle and then charging (the simulated board,
    MeterValueSampleInterval as configured): what the SD card sees."""
    rates = {}
    for phase in ("idle", "charging"):
        if phase == "charging":
            await start_session(guest, h)
        await asyncio.to_thread(guest.ssh, "sync")
        before, t0 = await asyncio.to_thread(_written_kib, guest), time.monotonic()
        await asyncio.sleep(minutes * 60)
        await asyncio.to_thread(guest.ssh, "sync")
        after, hours = await asyncio.to_thread(_written_kib, guest), (time.monotonic() - t0) / 3600
        rates[phase] = {part: (after[part] - before[part]) / hours for part in after}
        say("%6.1f s  written while %s for %.0f min: %s" % (guest.since(), phase, minutes, ", ".join(
            "%s %.0f KiB/h" % kv for kv in rates[phase].items())))
    return rates


class Proof:
    """The steps of the proof on one copy of the image; ``figures`` collects the timings."""

    def __init__(self, work: str, guest: Guest, cs, say, timeout_s: float) -> None:
        self.work, self.guest, self.cs, self.say, self.timeout_s = work, guest, cs, say, timeout_s
        self.figures = {}
        self.h = None

    def line(self, text: str) -> None:
        self.say("%6.1f s  %s" % (self.guest.since(), text))

    async def running(self, coro, what: str):
        """``coro``'s result, or CheckError as soon as QEMU ends."""
        task = asyncio.ensure_future(coro)
        while not task.done():
            if self.guest.process.poll() is not None:
                task.cancel()
                raise CheckError("QEMU ended (exit %s) while waiting for %s" % (self.guest.process.returncode, what))
            await asyncio.wait([task], timeout=1)
        return task.result()

    async def ssh(self, command: str) -> str:
        return await asyncio.to_thread(self.guest.ssh, command)

    async def boot(self, what: str) -> dict:
        """Start QEMU and wait for the station's BootNotification on a new connection."""
        mark = len(self.h.messages) if self.h is not None else 0
        self.guest.start()
        self.say("qemu-system-aarch64 started (%s: virt, cortex-a72, %d CPUs, %d MiB, software emulation)" % (
            what, self.guest.cpus, self.guest.memory_mib))
        self.h = await self.running(self.cs.wait_for_station(STATION_ID, timeout_s=self.timeout_s),
                                    "the station to connect")
        boot = await self.running(self.h.wait_for("BootNotification", timeout_s=self.timeout_s, start_index=mark),
                                  "BootNotification")
        self.line("BootNotification from %s: %s %s, firmware %s" % (
            STATION_ID, boot.get("chargePointVendor"), boot.get("chargePointModel"), boot.get("firmwareVersion")))
        return boot

    async def first_boot(self) -> None:
        await self.boot("first boot")
        self.figures["first boot to BootNotification s"] = self.guest.since()
        auth = {k.lower(): v for k, v in self.h.request_headers.items()}.get("authorization", "")
        if not auth.startswith("Basic "):
            raise CheckError("the agent connected without the Basic-auth password from the card")
        checks = {
            "card": "ls /boot/firmware | grep -c '^ocpp-agent.toml$' || true",
            "result": "cat /boot/firmware/ocpp-agent-result.txt",
            "config": "stat -c '%a %U' /etc/ocpp-agent/agent.toml",
            "root": "findmnt -no OPTIONS /",
            "data_mib": "df -BM --output=size /data | tail -1",
            "machine_id": "cat /etc/machine-id",
            "failed": "systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\\n' ' '",
        }
        seen = {name: await self.ssh(command) for name, command in checks.items()}
        self.line("over SSH (key only): config %s, root %s, /data %s, failed units: %s" % (
            seen["config"], seen["root"].split(",")[0], seen["data_mib"].strip(), seen["failed"] or "none"))
        problems = []
        if seen["card"].strip() != "0":
            problems.append("ocpp-agent.toml is still on the FAT partition")
        if seen["config"] != "600 ocpp-agent":
            problems.append("/etc/ocpp-agent/agent.toml is %s, not 600 ocpp-agent" % seen["config"])
        if not seen["root"].startswith("ro"):
            problems.append("the root is mounted %s, not read-only" % seen["root"])
        if int(seen["data_mib"].strip().rstrip("M")) < 1024:
            problems.append("the data partition was not grown: %s" % seen["data_mib"])
        if len(seen["machine_id"]) != 32:
            problems.append("no machine id committed: %r" % seen["machine_id"])
        if PASSWORD in seen["result"] or "deleted" not in seen["result"]:
            problems.append("ocpp-agent-result.txt: %r" % seen["result"])
        if seen["failed"]:
            problems.append("failed units: %s" % seen["failed"])
        if not await asyncio.to_thread(self.guest.password_login_refused):
            problems.append("SSH did not refuse a login without a key")
        if problems:
            raise CheckError("; ".join(problems))

    async def kill_agent(self) -> None:
        """SIGKILL to the service's main process: systemd starts it again."""
        pid = await self.ssh("systemctl show -p MainPID --value ocpp-agent")
        mark, killed_at = len(self.h.messages), self.guest.since()
        await self.ssh("kill -KILL %s" % pid)
        self.line("kill -KILL %s (the agent's main process)" % pid)
        await self.running(self.h.wait_for("BootNotification", timeout_s=self.timeout_s, start_index=mark),
                           "the agent to come back")
        self.figures["back after SIGKILL s"] = self.guest.since() - killed_at
        restarts = await self.ssh("systemctl show -p NRestarts --value ocpp-agent")
        new_pid = await self.ssh("systemctl show -p MainPID --value ocpp-agent")
        self.line("back: BootNotification again, NRestarts %s, main process %s" % (restarts, new_pid))
        if restarts != "1" or new_pid == pid:
            raise CheckError("systemd did not restart the agent (NRestarts %s, pid %s)" % (restarts, new_pid))

    async def update(self, served: str, files_port: int) -> None:
        """UpdateFirmware with a bundle served from here: installed beside the running version
        on the data partition (the root stays read-only), the new version boots."""
        running = (await self.ssh("ocpp-agent --version")).split()[-1]
        python = await self.ssh("python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'")
        bundle, version = await asyncio.to_thread(update_bundle, served, running, python, self.say)
        mark, t0 = len(self.h.messages), self.guest.since()
        location = "http://%s:%d/%s" % (GUEST_HOST, files_port, os.path.basename(bundle))
        await self.h.call("UpdateFirmware", location=location,
                          retrieveDate=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self.line("UpdateFirmware %s" % location)
        installed = await self.running(self.h.wait_for(
            "FirmwareStatusNotification", lambda p: p.get("status") in ("Installed", "InstallationFailed"),
            timeout_s=self.timeout_s, start_index=mark), "the update")
        statuses = [m.payload["status"] for m in self.h.messages[mark:] if m.action == "FirmwareStatusNotification"]
        boots = [m.payload.get("firmwareVersion") for m in self.h.messages[mark:] if m.action == "BootNotification"]
        current = await self.ssh("readlink /opt/ocpp-agent/current; findmnt -no OPTIONS / | cut -d, -f1")
        self.figures["update s"] = self.guest.since() - t0
        self.line("FirmwareStatusNotification %s; BootNotification %s; current -> %s" % (
            ", ".join(statuses), ", ".join(map(str, boots)), " / root ".join(current.split())))
        if installed["status"] != "Installed" or version not in boots or version not in current:
            raise CheckError("the update to %s did not install: %s" % (version, statuses))

    async def power_cut(self) -> None:
        """A session running, then the power cut (QEMU killed): at the next boot the agent
        closes the session once, reason PowerLoss, and charges again."""
        mark = len(self.h.messages)
        if not [m for m in self.h.messages if m.action == "StartTransaction"]:  # --wear-minutes started one
            await start_session(self.guest, self.h)
        await self.running(self.h.wait_for("MeterValues", timeout_s=180, start_index=mark), "MeterValues")
        self.guest.process.kill()
        self.guest.process.wait()
        self.line("power cut (QEMU killed) with a transaction running")
        self.guest.started = time.monotonic()
        mark = len(self.h.messages)
        await self.boot("after the power cut")
        stop = await self.running(self.h.wait_for("StopTransaction", timeout_s=120, start_index=mark),
                                  "StopTransaction")
        self.figures["boot after power cut s"] = self.guest.since()
        self.line("StopTransaction reason %s, meterStop %s" % (stop.get("reason"), stop.get("meterStop")))
        starts = [m for m in self.h.messages if m.action == "StartTransaction"]
        if stop.get("reason") != "PowerLoss" or len(starts) != 1:
            raise CheckError("after the power cut: StopTransaction %s, %d StartTransaction" % (stop, len(starts)))

    async def page_cpu(self, seconds: float) -> dict:
        """tools/page_watch.py against the guest's page (through an SSH tunnel: the page stays on
        the guest's loopback): bytes per view, and the agent service's CPU (its cgroup's, as
        the guest counts it) with a headless Chromium here watching the live view and without."""
        from tools import page_watch

        port = _free_port()
        tunnel = subprocess.Popen(self.guest.ssh_argv("-N", "-L", "127.0.0.1:%d:127.0.0.1:8080" % port),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(60):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    await asyncio.sleep(1)

            def cpu() -> float:
                usage = self.guest.ssh("grep usage_usec /sys/fs/cgroup/system.slice/ocpp-agent.service/cpu.stat")
                return int(usage.split()[1]) / 1e6

            result = await asyncio.to_thread(page_watch.measure, "http://127.0.0.1:%d/" % port, None, seconds,
                                             cpu=cpu)
        finally:
            tunnel.terminate()
            tunnel.wait(10)
        self.line("page: %s; live view %.0f B/s pushed; agent CPU %.2f %% watched, %.2f %% not" % (
            ", ".join("%s %.1f kB" % (v or "/", n / 1000) for v, n in result["views"].items()),
            result["pushed_bytes_per_s"], 100 * result["cpu_with_browser"], 100 * result["cpu_without_browser"]))
        return result

    async def power_off(self) -> None:
        await self.ssh("systemctl --no-block poweroff")
        code = await asyncio.to_thread(self.guest.stop, 180)
        self.line("powered off (QEMU exit %s)" % code)


def _serve(directory: str):
    """An HTTP server for ``directory`` on 127.0.0.1 (the guest: 10.0.2.2), in a thread."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=directory))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def next_version(version: str) -> str:
    parts = version.split(".")
    return ".".join(parts[:-1] + [str(int(parts[-1]) + 1)])


def update_bundle(out_dir: str, version: str, python: str, say) -> tuple:
    """(bundle path, version): this repository as the version after ``version``, for arm64 and
    the guest's Python."""
    from tools import build_bundle, build_deb

    new = next_version(version)
    say("the update: this repository as %s for arm64, Python %s" % (new, python))
    path = build_bundle.build_bundle(out_dir, version=new, platforms=build_deb.platforms_for("arm64"),
                                     python_version=python, say=lambda line: None)
    return path, new


async def prove(image: str, work: str, console: str, timeout_s: float, say, memory_mib: int = 1024,
                cpus: int = 2, wear_minutes: float = 0, update: bool = True, page_seconds: float = 0) -> dict:
    from tools.csms import TestCentralSystem

    copy = os.path.join(work, "card.img")
    subprocess.run(["cp", "--sparse=always", image, copy], check=True)
    with open(copy, "r+b") as f:
        f.truncate(os.path.getsize(copy) + (1 << 30))
    guest = Guest(work, copy, console, memory_mib, cpus)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "boot-image-proof", "-f", guest.key],
                   check=True)
    served = os.path.join(work, "served")
    os.makedirs(served)
    files = _serve(served) if update else None
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",), password=PASSWORD)
    await cs.start()
    proof = Proof(work, guest, cs, say, timeout_s)
    try:
        url = "ws://%s:%d/ocpp" % (GUEST_HOST, cs.port)
        with open(guest.key + ".pub") as f:
            text = owner_file(url, f.read())
        owner = os.path.join(work, "ocpp-agent.toml")
        with open(owner, "w") as f:
            f.write(text)
        subprocess.run(["mcopy", "-o", "-i", fat(copy), owner, "::/ocpp-agent.toml"], check=True)
        say("ocpp-agent.toml on the FAT partition: station %s, central system %s (loopback here)" % (STATION_ID, url))
        await proof.first_boot()
        await proof.kill_agent()
        if files is not None:
            await proof.update(served, files.server_address[1])
        if wear_minutes > 0:
            proof.figures["wear"] = await measure_wear(guest, proof.h, wear_minutes, say)
        if page_seconds > 0:
            if not [m for m in proof.h.messages if m.action == "StartTransaction"]:
                await start_session(guest, proof.h)  # the live view with a session charging
            proof.figures["page"] = await proof.page_cpu(page_seconds)
        await proof.power_cut()
        await proof.power_off()
        return proof.figures
    finally:
        if guest.process and guest.process.poll() is None:
            guest.stop(0.1)
        if files is not None:
            files.shutdown()
            files.server_close()
        await cs.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.boot_image", description=__doc__.split("\n\n")[0])
    p.add_argument("image", help="the image tools/build_image.py made")
    p.add_argument("--timeout", type=float, default=1500, help="seconds to wait for each step (default 1500)")
    p.add_argument("--console", help="file for the guest's serial console")
    p.add_argument("--memory", type=int, default=1024, help="the guest's memory, MiB")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--no-update", action="store_true", help="skip the update from the central system")
    p.add_argument("--page-seconds", type=float, default=0,
                   help="also measure the web page in the guest (tools/page_watch.py): CPU windows this long")
    p.add_argument("--wear-minutes", type=float, default=0,
                   help="also measure what is written to the card, idle and charging, for this long each")
    args = p.parse_args(argv)
    missing = missing_tools()
    if missing:
        print("error: missing: %s (apt-get install %s)" % (", ".join(missing), " ".join(missing)), file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="ocpp-agent-boot-", dir=os.environ.get("TMPDIR", "/var/tmp"))
    console = args.console or os.path.join(work, "console.log")
    t0 = time.monotonic()
    try:
        figures = asyncio.run(prove(os.path.abspath(args.image), work, console, args.timeout, print,
                                    args.memory, args.cpus, args.wear_minutes,
                                    not args.no_update, args.page_seconds))
    except (CheckError, subprocess.CalledProcessError, TimeoutError) as e:
        print("error: %s" % e, file=sys.stderr)
        if os.path.exists(console):
            with open(console, errors="replace") as f:
                print("guest console (last lines):\n" + "".join(f.readlines()[-40:]), file=sys.stderr)
        print("work directory kept: %s" % work, file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("ok: %s; total %.0f s" % (", ".join("%s %.0f" % (k, v) for k, v in figures.items()
                                               if isinstance(v, float)), time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
