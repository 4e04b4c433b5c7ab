"""Build a flashable Raspberry Pi image of the charger (docs/raspberry-pi.md) from Debian's
packages and this repository's Debian package only.

    sudo python -m tools.build_image                       # dist/ocpp-agent-<version>-trixie-arm64.img
    sudo python -m tools.build_image --suite bookworm --xz --out /var/tmp/img

The image (MBR, for every Pi's boot ROM):

    1  FAT32 "RASPIFIRM"  256 MiB  /boot/firmware  the Pi's boot files (raspi-firmware), Debian's
                                                   arm64 kernel and initrd; ocpp-agent.toml.example
    2  ext4  "RASPIROOT"           /               Debian (systemd, networkd, timesyncd, OpenSSH
                                                   off, Wi-Fi firmware), the ocpp-agent package;
                                                   mounted read-only
    3  ext4  "OCPPDATA"            /data           what changes: the agent's configuration, state
                                                   and versions (/etc/ocpp-agent, /var/lib/ocpp-agent,
                                                   /opt/ocpp-agent), the journal, systemd's state;
                                                   grown to the card's end at first boot

At each boot ocpp-image-bootconfig (tools/image/bootconfig.py) applies the owner's
``ocpp-agent.toml`` from the FAT partition before the agent starts. Kernels: what Debian's
``linux-image-arm64`` supports (Pi 3 and 4 on bookworm; trixie's also the Pi 5's SoC only in part).

Steps: the package (tools/build_deb.py, for the suite's Python), a tree by ``mmdebstrap``
(arm64 programs under qemu-user; downloaded packages kept in ``--cache`` for the next build),
the package installed and the image's files (tools/image/files) put in place in a chroot,
the tree split into the three partitions, ``mke2fs -d`` / ``mkfs.vfat`` + ``mcopy`` fill the
file systems with no loop device, ``sfdisk`` lays out the image. Needs root; prints each step's
time, the image's path and size; exit 1 with the reason on failure.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

from tools import build_deb
from tools.check_deb import CheckError, _run, ensure_binfmt

SUITES = {"trixie": "3.13", "bookworm": "3.11"}  # the suite's python3
FILES = os.path.join(build_deb.REPO, "tools", "image", "files")
BOOTCONFIG = os.path.join(build_deb.REPO, "tools", "image", "bootconfig.py")
HOSTNAME = "charger"
PACKAGES = (
    # a booting system with its network and clock
    "systemd-sysv", "udev", "kmod", "systemd-resolved", "systemd-timesyncd", "iproute2", "iputils-ping",
    "ca-certificates", "tzdata", "less",
    # the Pi: Debian's kernel and the Pi's boot firmware, Wi-Fi firmware and its supplicant
    "linux-image-arm64", "raspi-firmware", "firmware-brcm80211", "wpasupplicant", "wireless-regdb",
    # the agent's package needs these; the boot configuration uses growpart and resize2fs
    "python3", "python3-venv", "cloud-guest-utils", "e2fsprogs", "dosfstools", "openssh-server",
)
BOOT_MIB = 256
FIRST_MIB = 4  # the first partition's offset: alignment for SD cards' erase blocks
# what changes in use: moved from the tree to the data partition (tools/image/files/fstab binds them back)
DATA_DIRS = {"etc/ocpp-agent": "ocpp-agent/etc", "var/lib/ocpp-agent": "ocpp-agent/state",
             "opt/ocpp-agent": "ocpp-agent/opt", "var/log": "system/log", "var/lib/systemd": "system/systemd"}


def missing_tools(arch: str) -> list:
    """Debian packages this machine lacks for the build."""
    need = (("mmdebstrap", "mmdebstrap"), ("dpkg-deb", "dpkg"), ("mke2fs", "e2fsprogs"),
            ("mkfs.vfat", "dosfstools"), ("mcopy", "mtools"), ("sfdisk", "fdisk"))
    missing = [pkg for tool, pkg in need if shutil.which(tool) is None]
    if arch != build_deb.host_arch() and not os.path.exists("/usr/libexec/qemu-binfmt/aarch64-binfmt-P"):
        missing.append("qemu-user-static")
    return missing


def default_cache() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "ocpp-agent", "apt")


def make_tree(tree: str, suite: str, cache: str, say) -> None:
    """A Debian arm64 tree with PACKAGES; the .debs downloaded are kept in ``cache``."""
    ensure_binfmt("arm64")
    cache = os.path.join(cache, "%s-arm64" % suite)
    os.makedirs(cache, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(tree)), exist_ok=True)
    say("mmdebstrap %s arm64 (%d packages and what they need)" % (suite, len(PACKAGES)))
    _run(["mmdebstrap", "--variant=minbase", "--architectures=arm64", "--mode=root",
          "--components=main non-free-firmware", "--include=" + ",".join(PACKAGES),
          "--skip=download/empty", "--skip=essential/unlink",
          "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
          "--setup-hook=sync-in %s/ /var/cache/apt/archives/" % cache,
          "--customize-hook=sync-out /var/cache/apt/archives %s/" % cache,
          "--customize-hook=rm -f \"$1\"/var/cache/apt/archives/*.deb",
          suite, tree], "mmdebstrap", timeout_s=3600)


def _chroot(tree: str, *argv, what: str = "", timeout_s: float = 1800) -> str:
    return _run(["chroot", tree] + list(argv), what or " ".join(argv), timeout_s=timeout_s,
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C.UTF-8"))


def _put(name: str, tree: str, dest: str, mode: int = 0o644) -> None:
    path = os.path.join(tree, dest.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copyfile(name if os.path.isabs(name) else os.path.join(FILES, name), path)
    os.chmod(path, mode)


def _symlink(target: str, tree: str, link: str) -> None:
    path = os.path.join(tree, link.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.remove(path)
    os.symlink(target, path)


def configure(tree: str, deb: str, say) -> None:
    """The package installed, the image's files and services set up, the boot files made."""
    say("dpkg -i %s" % os.path.basename(deb))
    shutil.copy(deb, os.path.join(tree, "tmp"))
    _chroot(tree, "dpkg", "-i", "/tmp/" + os.path.basename(deb), what="dpkg -i the agent's package")
    os.remove(os.path.join(tree, "tmp", os.path.basename(deb)))

    say("the image's files")
    _put("fstab", tree, "/etc/fstab")
    _put("ocpp-image-bootconfig.service", tree, "/etc/systemd/system/ocpp-image-bootconfig.service")
    _put(BOOTCONFIG, tree, "/usr/local/lib/ocpp-image/bootconfig.py", 0o755)
    _put("ocpp-agent-image.conf", tree, "/etc/systemd/system/ocpp-agent.service.d/image.conf")
    _put("sshd.conf", tree, "/etc/ssh/sshd_config.d/ocpp-image.conf")
    _put("wired.network", tree, "/etc/systemd/network/10-wired.network")
    _put("wireless.network", tree, "/etc/systemd/network/20-wireless.network")
    _put("wait-online.conf", tree, "/etc/systemd/system/systemd-networkd-wait-online.service.d/image.conf")
    _put("journald.conf", tree, "/etc/systemd/journald.conf.d/image.conf")
    _symlink("/data/network/wpa_supplicant-wlan0.conf", tree, "/etc/wpa_supplicant/wpa_supplicant-wlan0.conf")
    with open(os.path.join(tree, "etc/hostname"), "w") as f:
        f.write(HOSTNAME + "\n")
    with open(os.path.join(tree, "etc/hosts"), "w") as f:
        f.write("127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n" % HOSTNAME)
    _symlink("../run/systemd/resolve/stub-resolv.conf", tree, "/etc/resolv.conf")
    for mount_point in ("data", "boot/firmware"):
        os.makedirs(os.path.join(tree, mount_point), exist_ok=True)
    _chroot(tree, "systemctl", "enable", "ocpp-image-bootconfig.service", "systemd-networkd.service",
            "systemd-resolved.service", "systemd-timesyncd.service", "ocpp-agent.service")
    _chroot(tree, "systemctl", "disable", "ssh.service")  # on only with keys (bootconfig starts it)
    _chroot(tree, "systemctl", "mask", "ssh.socket")
    # wpa_supplicant@wlan0 serves Wi-Fi (bootconfig starts it); the D-Bus one is for NetworkManager
    _chroot(tree, "systemctl", "disable", "wpa_supplicant.service")
    # sshd over AF_VSOCK is for virtual machines; on a Pi the generator only fails at each boot
    _symlink("/dev/null", tree, "/etc/systemd/system-generators/systemd-ssh-generator")
    # Each card makes its own identity at first boot: no machine id, no SSH host keys in the image.
    for key in glob.glob(os.path.join(tree, "etc/ssh/ssh_host_*")):
        os.remove(key)
    with open(os.path.join(tree, "etc/machine-id"), "w"):
        pass
    for stale in ("var/lib/dbus/machine-id",):
        if os.path.lexists(os.path.join(tree, stale)):
            os.remove(os.path.join(tree, stale))

    say("boot files (raspi-firmware: config.txt, cmdline.txt root=LABEL=RASPIROOT)")
    defaults = os.path.join(tree, "etc/default/raspi-firmware")
    with open(defaults) as f:
        text = f.read()
    text = "\n".join("ROOTPART=LABEL=RASPIROOT" if line.lstrip("#").startswith("ROOTPART=") else line
                     for line in text.splitlines()) + "\n"
    with open(defaults, "w") as f:
        f.write(text)
    boot_files(tree)
    _chroot(tree, "apt-get", "clean")


def boot_files(tree: str) -> None:
    """raspi-firmware's kernel hook: the Pi's boot files, kernel and initrd in /boot/firmware."""
    kernel = sorted(os.path.basename(k)[len("vmlinuz-"):] for k in glob.glob(os.path.join(tree, "boot/vmlinuz-*")))[-1]
    proc = os.path.join(tree, "proc")
    # with /proc the hook sees it runs in a chroot (ischroot) and fills the folder, mounted or not
    _run(["mount", "-t", "proc", "proc", proc], "mount /proc in the tree")
    try:
        _chroot(tree, "env", "DEB_MAINT_PARAMS=configure", "/etc/kernel/postinst.d/z50-raspi-firmware", kernel,
                "/boot/vmlinuz-" + kernel, what="raspi-firmware's kernel hook")
    finally:
        _run(["umount", proc], "umount /proc in the tree")
    _put("ocpp-agent.toml.example", tree, "/boot/firmware/ocpp-agent.toml.example")


def split(tree: str, data: str) -> None:
    """What changes moved from ``tree`` into ``data`` (owners and modes kept)."""
    for src, dest in DATA_DIRS.items():
        path, target = os.path.join(tree, src), os.path.join(data, dest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(path):
            shutil.move(path, target)
        else:
            os.makedirs(target)
        os.makedirs(path)  # the mount point
        st = os.stat(target)
        os.chown(path, st.st_uid, st.st_gid)
        os.chmod(path, st.st_mode & 0o7777)
    os.makedirs(os.path.join(data, "system/log/journal"), exist_ok=True)
    for private in ("network", "ssh"):
        os.makedirs(os.path.join(data, private), mode=0o700, exist_ok=True)


def _du_mib(path: str) -> int:
    out = subprocess.run(["du", "-s", "--block-size=1M", path], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def filesystems(tree: str, data: str, work: str, say) -> dict:
    """{name: (file, MiB)} of the three file systems."""
    boot_dir = os.path.join(tree, "boot/firmware")
    root_mib = int(_du_mib(tree) * 1.15) + 128  # headroom: kernel upgrades, apt (remounted writable)
    data_mib = _du_mib(data) * 2 + 128  # an agent update beside the running version; grown at first boot
    out = {}
    say("ext4 root %d MiB, ext4 data %d MiB, FAT %d MiB" % (root_mib, data_mib, BOOT_MIB))
    boot = os.path.join(work, "boot.fat")
    with open(boot, "wb") as f:
        f.truncate(BOOT_MIB << 20)
    _run(["mkfs.vfat", "-F", "32", "-n", "RASPIFIRM", boot], "mkfs.vfat")
    names = sorted(os.listdir(boot_dir))
    _run(["mcopy", "-s", "-p", "-m", "-i", boot] + [os.path.join(boot_dir, n) for n in names] + ["::/"], "mcopy")
    out["boot"] = (boot, BOOT_MIB)
    shutil.rmtree(boot_dir)
    os.makedirs(boot_dir)
    for name, label, source, mib in (("root", "RASPIROOT", tree, root_mib), ("data", "OCPPDATA", data, data_mib)):
        path = os.path.join(work, name + ".ext4")
        _run(["mke2fs", "-q", "-t", "ext4", "-L", label, "-m", "1", "-E", "root_owner=0:0", "-d", source, path,
              "%dM" % mib], "mke2fs %s" % name)
        out[name] = (path, mib)
    return out


def assemble(image: str, parts: dict) -> int:
    """The partitioned image from the file systems; its size in MiB."""
    boot_mib, root_mib, data_mib = parts["boot"][1], parts["root"][1], parts["data"][1]
    total = FIRST_MIB + boot_mib + root_mib + data_mib
    with open(image, "wb") as f:
        f.truncate(total << 20)
    layout = ("label: dos\nunit: sectors\n"
              "start=%d, size=%d, type=c, bootable\nstart=%d, size=%d, type=83\nstart=%d, size=%d, type=83\n") % (
        FIRST_MIB * 2048, boot_mib * 2048, (FIRST_MIB + boot_mib) * 2048, root_mib * 2048,
        (FIRST_MIB + boot_mib + root_mib) * 2048, data_mib * 2048)
    done = subprocess.run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", image], input=layout, text=True,
                          capture_output=True)
    if done.returncode != 0:
        raise CheckError("sfdisk: %s" % done.stderr.strip())
    offset = FIRST_MIB
    for name in ("boot", "root", "data"):
        _run(["dd", "if=" + parts[name][0], "of=" + image, "bs=1M", "seek=%d" % offset, "conv=notrunc,sparse",
              "status=none"], "dd %s" % name)
        offset += parts[name][1]
    return total


def build(out_dir: str, *, suite: str = "trixie", deb: str | None = None, cache: str | None = None,
          xz: bool = False, keep: str | None = None, say=print) -> dict:
    """Build the image; {"image": path, "mib": size, "xz": path or None, "times": {step: s}}."""
    if os.geteuid() != 0:
        raise CheckError("building the image needs root (chroot, mmdebstrap --mode=root, file ownership)")
    missing = missing_tools("arm64")
    if missing:
        raise CheckError("missing: %s (apt-get install %s)" % (", ".join(missing), " ".join(missing)))
    times = {}
    os.makedirs(out_dir, exist_ok=True)
    work = keep or tempfile.mkdtemp(prefix="ocpp-agent-image-", dir=os.environ.get("TMPDIR", "/var/tmp"))
    try:
        t0 = time.monotonic()
        if deb is None:
            say("the package for arm64, Python %s (%s)" % (SUITES[suite], suite))
            deb = build_deb.build_deb(os.path.join(work, "deb"), arch="arm64", pythons=(SUITES[suite],),
                                      say=lambda line: None)
            times["package"] = time.monotonic() - t0
        version = os.path.basename(deb).split("_")[1]
        tree, data = os.path.join(work, "tree"), os.path.join(work, "data")
        for path in (tree, data):
            shutil.rmtree(path, ignore_errors=True)
        t0 = time.monotonic()
        make_tree(tree, suite, cache or default_cache(), say)
        times["mmdebstrap"] = time.monotonic() - t0
        t0 = time.monotonic()
        configure(tree, deb, say)
        split(tree, data)
        times["configure"] = time.monotonic() - t0
        t0 = time.monotonic()
        parts = filesystems(tree, data, work, say)
        image = os.path.join(out_dir, "ocpp-agent-%s-%s-arm64.img" % (version, suite))
        mib = assemble(image, parts)
        times["file systems and image"] = time.monotonic() - t0
        compressed = None
        if xz:
            t0 = time.monotonic()
            compressed = image + ".xz"
            say("xz %s" % os.path.basename(compressed))
            with open(compressed, "wb") as f:
                subprocess.run(["xz", "-T0", "-6", "-c", image], stdout=f, check=True)
            times["xz"] = time.monotonic() - t0
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return {"image": image, "mib": mib, "xz": compressed, "times": times}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.build_image", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default="trixie", choices=sorted(SUITES), help="Debian release (default trixie)")
    p.add_argument("--out", default=os.path.join(build_deb.REPO, "dist"), help="where the image goes")
    p.add_argument("--deb", help="the agent's package to install (default: build it for the suite's Python)")
    p.add_argument("--cache", help="downloaded Debian packages, reused (default ~/.cache/ocpp-agent/apt)")
    p.add_argument("--xz", action="store_true", help="also write IMAGE.xz (what Raspberry Pi Imager takes)")
    p.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (the tree, the file systems)")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    try:
        built = build(args.out, suite=args.suite, deb=args.deb, cache=args.cache, xz=args.xz, keep=args.keep)
    except (CheckError, build_deb.DebError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    sizes = "%d MiB (%d MiB of data in it)" % (built["mib"], _du_mib(built["image"]))
    if built["xz"]:
        sizes += ", %s %.0f MiB" % (os.path.basename(built["xz"]), os.path.getsize(built["xz"]) / 2 ** 20)
    print("ok: %s, %s; %s; total %.0f s" % (built["image"], sizes, ", ".join(
        "%s %.0f s" % kv for kv in built["times"].items()), time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
