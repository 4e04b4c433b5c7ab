"""Install a bundle into the install root and make it the current version: what the Debian
package's postinst runs (installed as /usr/lib/ocpp-agent/install-bundle), with the system's
python3 and nothing of its site-packages (``python3 -I -S``).

    python3 -I -S /usr/lib/ocpp-agent/install-bundle /opt/ocpp-agent /usr/lib/ocpp-agent/bundles/cp311/ocpp-agent-0.2.0.bundle

The installer is the agent's own (agent/update/installer.py, the same as an update from the
central system): its code and that of its dependencies are taken from the bundle's wheels,
unpacked into a temporary directory put first on ``sys.path`` (the bundle holds wheels for this
Python). It checks the bundle (manifest, every wheel's SHA-256, this Python and platform),
makes ``<root>/versions/<version>`` a virtual environment installed from the bundle's wheels
alone (``pip --no-index``), then switches ``current`` (``previous`` keeps the old one) and
prunes old versions. A version that is installed and current already is left as it is (a
reinstall of the same package). Exit 1 with one line saying why on failure.
"""

import os
import sys
import tarfile
import tempfile
import zipfile


def _unpack_code(bundle: str, dest: str) -> None:
    with tarfile.open(bundle) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith("wheels/") and member.name.endswith(".whl"):
                with zipfile.ZipFile(tar.extractfile(member)) as wheel:
                    wheel.extractall(dest)  # zipfile drops absolute paths and ".." parts


def main(argv: list) -> int:
    if len(argv) != 3:
        print("usage: install-bundle ROOT BUNDLE", file=sys.stderr)
        return 2
    root_path, bundle = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    with tempfile.TemporaryDirectory(prefix="ocpp-agent-install-") as tmp:
        try:
            _unpack_code(bundle, tmp)
        except (OSError, tarfile.TarError, zipfile.BadZipFile) as e:
            print("ocpp-agent: cannot read %s: %s" % (bundle, e), file=sys.stderr)
            return 1
        sys.path.insert(0, tmp)
        from agent.update.bundle import BundleError, read_manifest
        from agent.update.installer import InstallError, InstallRoot

        root = InstallRoot(root_path, python=sys.executable)
        try:
            version = read_manifest(bundle)["version"]
            if version == root.current_version():
                print("ocpp-agent %s is installed and current in %s" % (version, root_path))
                return 0
            root.install(bundle, log=lambda line: print("ocpp-agent: %s" % line) if line else None)
            root.activate(version)
            removed = root.prune()
        except (BundleError, InstallError) as e:
            print("ocpp-agent: %s" % e, file=sys.stderr)
            return 1
    print("ocpp-agent %s is current in %s%s" % (version, root_path,
                                                 " (removed: %s)" % ", ".join(removed) if removed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
