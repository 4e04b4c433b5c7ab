"""The image's layout (tools/build_image.py) from a small stand-in tree, without mmdebstrap:
what changes moves to the data partition with its owners, the three file systems carry the
labels fstab and cmdline.txt name, the partitions are aligned and the FAT one is bootable. The
whole image is built and booted by the slow proof (tools/build_image.py, tools/boot_image.py)."""

import json
import os
import re
import shutil
import subprocess

import pytest

from tools import build_image

TOOLS = ("mkfs.vfat", "mcopy", "mdir", "sfdisk", "mke2fs", "debugfs")


@pytest.fixture
def tools_here():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        if os.environ.get("OCPP_AGENT_CI"):
            pytest.fail("missing in CI: %s" % ", ".join(missing))
        pytest.skip("missing: %s (apt-get install dosfstools mtools fdisk e2fsprogs)" % ", ".join(missing))


def stand_in_tree(tree) -> None:
    for d in ("etc/ocpp-agent", "var/lib/ocpp-agent/journal", "opt/ocpp-agent/versions/0.1.0/bin", "var/log/apt",
              "var/lib/systemd/timesync", "boot/firmware/overlays", "usr/bin"):
        os.makedirs(tree / d)
    (tree / "etc/ocpp-agent/agent.toml").write_text("[station]\n")
    os.chmod(tree / "etc/ocpp-agent", 0o750)
    os.chown(tree / "etc/ocpp-agent", 4242, 4242)
    (tree / "opt/ocpp-agent/versions/0.1.0/bin/ocpp-agent").write_text("#!/bin/sh\n")
    (tree / "boot/firmware/cmdline.txt").write_text("console=tty0 root=LABEL=RASPIROOT rw rootwait\n")
    (tree / "boot/firmware/overlays/x.dtbo").write_bytes(b"\0" * 10)
    (tree / "usr/bin/true").write_bytes(b"\x7fELF" + b"\0" * 4096)


def debugfs(image_fs: str, command: str) -> str:
    return subprocess.run(["debugfs", "-R", command, image_fs], capture_output=True, text=True, check=True).stdout


def test_split_file_systems_and_partitions(tmp_path, tools_here):
    tree, data, work = tmp_path / "tree", tmp_path / "data", tmp_path / "work"
    work.mkdir()
    stand_in_tree(tree)
    build_image.split(str(tree), str(data))

    # what changes is on the data partition, an empty mount point with the same owner stays behind
    assert (data / "ocpp-agent/etc/agent.toml").exists()
    assert (data / "ocpp-agent/opt/versions/0.1.0/bin/ocpp-agent").exists()
    assert (data / "system/systemd/timesync").is_dir() and (data / "system/log/journal").is_dir()
    assert os.listdir(tree / "etc/ocpp-agent") == []
    st = os.stat(tree / "etc/ocpp-agent")
    assert (st.st_uid, st.st_mode & 0o777) == (4242, 0o750)
    assert os.stat(data / "ssh").st_mode & 0o777 == 0o700

    parts = build_image.filesystems(str(tree), str(data), str(work), say=lambda line: None)
    image = str(tmp_path / "card.img")
    total_mib = build_image.assemble(image, parts)
    assert total_mib == build_image.FIRST_MIB + sum(mib for _, mib in parts.values())

    table = json.loads(subprocess.run(["sfdisk", "--json", image], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]
    assert table["label"] == "dos"
    boot, root, data_part = table["partitions"]
    assert boot["start"] == build_image.FIRST_MIB * 2048 and boot.get("bootable") and boot["type"] == "c"
    assert [p["start"] % 2048 for p in table["partitions"]] == [0, 0, 0]  # MiB-aligned
    assert root["start"] == boot["start"] + boot["size"] and data_part["start"] == root["start"] + root["size"]
    assert (data_part["start"] + data_part["size"]) * 512 == os.path.getsize(image)  # the last: grown at first boot

    fat = "%s@@%d" % (image, boot["start"] * 512)
    listing = subprocess.run(["mdir", "-b", "-s", "-i", fat, "::/"], capture_output=True, text=True,
                             check=True).stdout
    assert "::/cmdline.txt" in listing and "::/overlays/x.dtbo" in listing
    label = subprocess.run(["mlabel", "-s", "-i", fat, "::"], capture_output=True, text=True).stdout
    assert "RASPIFIRM" in label

    root_fs, data_fs = parts["root"][0], parts["data"][0]
    assert "RASPIROOT" in subprocess.run(["e2label", root_fs], capture_output=True, text=True).stdout
    assert "OCPPDATA" in subprocess.run(["e2label", data_fs], capture_output=True, text=True).stdout
    assert "agent.toml" in debugfs(data_fs, "ls -l /ocpp-agent/etc")
    assert re.search(r"4242\s+4242", debugfs(data_fs, "ls -l /ocpp-agent"))  # owners kept
    assert "agent.toml" not in debugfs(root_fs, "ls -l /etc/ocpp-agent")
    assert "cmdline.txt" not in debugfs(root_fs, "ls /boot/firmware")  # only on the FAT partition


def test_fstab_and_the_boot_files_name_the_same_labels():
    with open(os.path.join(build_image.FILES, "fstab")) as f:
        fstab = [line.split() for line in f if line.strip() and not line.startswith("#")]
    mounts = {fields[1]: fields for fields in fstab}
    assert mounts["/"][0] == "LABEL=RASPIROOT" and "ro" in mounts["/"][3].split(",")
    assert mounts["/boot/firmware"][0] == "LABEL=RASPIFIRM" and "umask=0077" in mounts["/boot/firmware"][3]
    assert mounts["/data"][0] == "LABEL=OCPPDATA"
    for src, dest in build_image.DATA_DIRS.items():
        assert mounts["/" + src][:3] == ["/data/" + dest, "/" + src, "none"], src  # bound back in place
    with open(build_image.BOOTCONFIG) as f:
        bootconfig = f.read()
    with open(os.path.join(build_image.FILES, "sshd.conf")) as f:
        sshd = f.read()
    assert "/data/ssh/authorized_keys" in sshd and "PasswordAuthentication no" in sshd
    assert 'SSH_KEYS_FILE = "ssh/authorized_keys"' in bootconfig


def test_the_boot_configuration_unit_verifies(tmp_path, tools_here):
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("OCPP_AGENT_CI"):
            pytest.fail("missing in CI: systemd-analyze")
        pytest.skip("no systemd-analyze (Debian: systemd)")
    with open(os.path.join(build_image.FILES, "ocpp-image-bootconfig.service")) as f:
        text = f.read()
    assert "Before=ocpp-agent.service ssh.service" in text and "SuccessExitStatus=1" in text
    unit = tmp_path / "ocpp-image-bootconfig.service"
    unit.write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
