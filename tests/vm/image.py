"""The VM's disk image: a Debian 12 root file system built by mmdebstrap, cached outside
the checkout under a name that hashes everything that built it (package list, this
file, the architecture), so a second run boots at once and a change rebuilds.

Runs on the host with the system python3 (stdlib only). The apt sources are the ones
this machine already uses, read at run time: no registry host is written in the repo.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

# Bumped by hand when the build changes in a way the text below does not show.
IMAGE_VERSION = "1"
SUITE = "bookworm"
SIZE = "4G"

# What the checks need in the guest, beyond apt's minimal set: systemd as PID 1 with
# udev, Debian's own kernel, v4l2loopback built by dkms for that kernel, and the
# operator guide's prerequisites (python3-venv; sudo for its commands).
PACKAGES = [
    "systemd",
    "systemd-sysv",
    "udev",
    "kmod",
    "initramfs-tools",
    "passwd",
    "sudo",
    "procps",
    "iproute2",
    "python3",
    "python3-venv",
    "v4l-utils",
    "dkms",
    "make",
    "v4l2loopback-dkms",
]

# The guest side's fixed part: mount the share and run the checks that come with the
# checkout (tests/vm/guest_check.py), then power off. Kept tiny so that changing the
# checks does not rebuild the image.
GUEST_RUNNER = """#!/bin/sh
# vmtest: run the checks handed in on the 9p share, then power off.
mkdir -p /mnt/vmtest /mnt/wheels
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 vmtest /mnt/vmtest
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro wheels /mnt/wheels
python3 /mnt/vmtest/guest_check.py >/dev/console 2>&1
echo "vmtest-guest: exit $?" >/dev/console
sync
systemctl poweroff --no-block
"""

GUEST_UNIT = """[Unit]
Description=vmtest checks from the 9p share
After=local-fs.target systemd-udevd.service systemd-modules-load.service network.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/vmtest-guest
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
"""

NETWORK = """[Match]
Name=en* eth*

[Network]
DHCP=yes
"""


def kernel_packages(arch: str) -> list[str]:
    flavour = {"amd64": "amd64", "arm64": "arm64"}[arch]
    return [f"linux-image-{flavour}", f"linux-headers-{flavour}"]


def apt_sources(suite: str = SUITE, etc: Path = Path("/etc/apt")) -> list[str]:
    """One-line ``deb`` entries for ``suite`` (and its -updates/-security) from this
    machine's /etc/apt/sources.list and sources.list.d (both formats)."""
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*"))]
    lines: list[str] = []
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            lines += _deb822(text, suite)
        elif path.suffix == ".list" or path.name == "sources.list":
            lines += _one_line(text, suite)
    unique = list(dict.fromkeys(lines))
    if not unique:
        raise SystemExit(f"vmtest: no apt source for Debian {suite} in {etc}: cannot build")
    return unique


def _wanted(suite: str, wanted: str) -> bool:
    return suite == wanted or suite.startswith(f"{wanted}-") or suite.startswith(f"{wanted}/")


def _one_line(text: str, suite: str) -> list[str]:
    found = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if len(words) < 4 or words[0] != "deb":
            continue
        if words[1].startswith("["):  # options: [signed-by=...]
            while words and not words[1].endswith("]"):
                words.pop(1)
            words.pop(1)
        if len(words) >= 4 and _wanted(words[2], suite) and "main" in words[3:]:
            found.append(f"deb {words[1]} {words[2]} main")
    return found


def _deb822(text: str, suite: str) -> list[str]:
    found = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for raw in stanza.splitlines():
            if raw.startswith("#") or ":" not in raw:
                continue
            key, value = raw.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
            continue
        if "main" not in fields.get("components", "").split():
            continue
        for uri in fields.get("uris", "").split():
            for name in fields.get("suites", "").split():
                if _wanted(name, suite):
                    found.append(f"deb {uri} {name} main")
    return found


def image_key(arch: str) -> str:
    """What built the image: packages, the customize hook (runner, unit, network), size,
    architecture, apt sources. A change to any of them names a new image."""
    parts = [IMAGE_VERSION, arch, SUITE, SIZE, *PACKAGES, *kernel_packages(arch)]
    parts += [Image.customize_hook(), *apt_sources()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class Image:
    """base.qcow2, vmlinuz and initrd.img in ``cache/image-ARCH-KEY``."""

    def __init__(self, cache: Path, arch: str):
        self.arch = arch
        self.dir = cache / f"image-{arch}-{image_key(arch)}"
        self.disk = self.dir / "base.qcow2"
        self.kernel = self.dir / "vmlinuz"
        self.initrd = self.dir / "initrd.img"
        self.info = self.dir / "kernel-version"

    def ready(self) -> bool:
        return all(p.exists() for p in (self.disk, self.kernel, self.initrd, self.info))

    def build(self, log: Path) -> None:
        """mmdebstrap into a directory, then mke2fs -d into a raw disk, then qcow2."""
        if self.dir.exists():
            shutil.rmtree(self.dir)
        work = Path(tempfile.mkdtemp(prefix=f"build-{self.arch}-", dir=self.dir.parent))
        try:
            root = work / "root"
            hook = work / "customize.sh"
            hook.write_text(self.customize_hook())
            hook.chmod(0o755)
            cmd = [
                "nice", "-n", "15", "mmdebstrap", "--variant=apt", f"--architectures={self.arch}",
                "--include=" + ",".join(PACKAGES + kernel_packages(self.arch)),
                f"--customize-hook={hook} \"$1\"",
                SUITE, str(root), *apt_sources(),
            ]  # fmt: skip
            _run(cmd, log)
            version = (root / "vmtest-kernel-version").read_text().strip()
            (root / "vmtest-kernel-version").unlink()
            raw = work / "root.raw"
            _run(["mke2fs", "-q", "-t", "ext4", "-L", "root", "-d", str(root), str(raw), SIZE], log)
            staged = work / "image"
            staged.mkdir()
            _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(staged / "base.qcow2")], log)
            shutil.copy(root / "boot" / f"vmlinuz-{version}", staged / "vmlinuz")
            shutil.copy(root / "boot" / f"initrd.img-{version}", staged / "initrd.img")
            (staged / "kernel-version").write_text(version + "\n")
            staged.rename(self.dir)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    @staticmethod
    def customize_hook() -> str:
        """Shell run by mmdebstrap with the root dir as $1: v4l2loopback built for the
        GUEST kernel (never the host's uname -r), the runner unit, network, fstab."""
        return f"""#!/bin/sh
set -eu
root=$1
version=$(ls "$root/lib/modules" | sort -V | tail -n 1)
[ -n "$version" ] || {{ echo "vmtest: no kernel in the image" >&2; exit 1; }}
loopback=$(ls "$root/usr/src" | grep '^v4l2loopback-' | sed 's/^v4l2loopback-//')
chroot "$root" dkms build -m v4l2loopback -v "$loopback" -k "$version"
chroot "$root" dkms install -m v4l2loopback -v "$loopback" -k "$version" --force
found=$(find "$root/lib/modules/$version" -name 'v4l2loopback.ko*' | head -n 1)
[ -n "$found" ] || {{ echo "vmtest: v4l2loopback was not built for $version" >&2; exit 1; }}
chroot "$root" depmod -a "$version"
echo "$version" >"$root/vmtest-kernel-version"
echo vmtest >"$root/etc/hostname"
printf '127.0.1.1 vmtest\\n' >>"$root/etc/hosts"
printf '/dev/vda / ext4 errors=remount-ro 0 1\\n' >"$root/etc/fstab"
cat >"$root/usr/local/sbin/vmtest-guest" <<'EOF'
{GUEST_RUNNER}EOF
chmod 0755 "$root/usr/local/sbin/vmtest-guest"
cat >"$root/etc/systemd/system/vmtest-guest.service" <<'EOF'
{GUEST_UNIT}EOF
cat >"$root/etc/systemd/network/50-dhcp.network" <<'EOF'
{NETWORK}EOF
chroot "$root" systemctl enable vmtest-guest.service systemd-networkd.service
chroot "$root" systemctl mask systemd-networkd-wait-online.service
chroot "$root" passwd -d root
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*_Packages
"""


def _run(cmd: list[str], log: Path) -> None:
    with log.open("a") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"vmtest: {cmd[0] if cmd[0] != 'nice' else cmd[3]} failed:\n{tail}")
