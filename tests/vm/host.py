"""scripts/vmtest: boot a throwaway Debian 12 VM (systemd as PID 1, Debian's kernel,
vivid and v4l2loopback cameras), install puccicam there with deploy/install.sh and run
tests/vm/guest_check.py in it; print one line per step and a summary.

Host side, stdlib only, run with the system python3 (not the project's .venv).
Everything large is cached outside the checkout (the disk image keyed on what built
it, the wheels keyed on the requirements), so a second run downloads nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from image import Image

ROOT = Path(__file__).resolve().parents[2]
ARCHES = {
    "amd64": {"qemu": "qemu-system-x86_64", "pip": "x86_64", "console": "ttyS0"},
    "arm64": {"qemu": "qemu-system-aarch64", "pip": "aarch64", "console": "ttyAMA0"},
}
MIN_FREE_GB = 8
# Per boot: the first one installs and runs every check up to the power cut. Sized for
# CI's 90 minutes (the main suite takes about 10 of them): passing runs took 15 to 22
# minutes here, one on a 2-core machine shared with four test suites 37; past these
# the run is reported as failed with the serial log's tail, never left hanging.
BOOT_LIMITS = {"amd64": (2700, 900), "arm64": (14400, 3600)}
# Cached images and wheels carry the key of what built them, so an edit to the package
# list or to pyproject.toml leaves the old ones behind: entries of any key that no run
# has used for this long are deleted (about 1.2 GB an image).
STALE_AFTER_S = 3 * 86400
GLIBC_TAGS = ["manylinux2014", *(f"manylinux_2_{n}" for n in (17, 24, 26, 27, 28, 31, 34, 35, 36))]


class Steps:
    """One line per step with its elapsed time; the summary counts them."""

    def __init__(self):
        self.started = time.monotonic()
        self.failed: list[str] = []
        self.count = 0

    def line(self, name: str, ok: bool, seconds: float, detail: str = "") -> None:
        self.count += 1
        if not ok:
            self.failed.append(name)
        total = time.monotonic() - self.started
        text = f"vmtest: [{total:6.0f} s] {'ok  ' if ok else 'FAIL'} {name} ({seconds:.0f} s)"
        print(text + (f": {detail}" if detail else ""), flush=True)

    def run(self, name: str, action):
        started = time.monotonic()
        try:
            detail = action()
        except SystemExit as exc:
            self.line(name, False, time.monotonic() - started, str(exc))
            raise SystemExit(f"vmtest: cannot go on after '{name}'") from exc
        self.line(name, True, time.monotonic() - started, detail or "")
        return detail


def die(message: str) -> None:
    raise SystemExit(f"vmtest: {message}")


def preflight(arch: str, cache: Path, in_use: list[Path] | None = None) -> str:
    """Every tool, root, then the stale cache pruned before free space is judged (old
    images are what fills it), then qemu's 9p; a clear message for the first missing."""
    qemu = ARCHES[arch]["qemu"]
    needed = [qemu, "qemu-img", "mmdebstrap", "mke2fs"]
    missing = [c for c in needed if shutil.which(c) is None]
    if missing:
        system = "qemu-system-x86" if arch == "amd64" else "qemu-system-arm qemu-user-static"
        die(f"{', '.join(missing)} not found: apt-get install mmdebstrap qemu-utils {system}")
    pip = [sys.executable, "-m", "pip", "--version"]  # it downloads the guest's wheels
    if subprocess.run(pip, capture_output=True, check=False).returncode != 0:
        die(f"no pip for {sys.executable}: apt-get install python3-pip")
    if os.geteuid() != 0:
        die("must run as root (mmdebstrap's chroot, mke2fs -d of a root file system)")
    cache.mkdir(parents=True, exist_ok=True)
    pruned = prune(cache, arch, in_use or [])
    free = shutil.disk_usage(cache).free / 2**30
    if free < MIN_FREE_GB:
        die(f"only {free:.1f} GB free under {cache}; needs {MIN_FREE_GB} GB")
    devices = subprocess.run(
        [qemu, "-device", "help"], capture_output=True, text=True, check=False
    ).stdout
    if "virtio-9p" not in devices:
        die(f"{qemu} has no virtio-9p device: no way to share files with the VM")
    if arch == "arm64":
        foreign_arch_ready()
    return f"{qemu}, {free:.0f} GB free in {cache}, 9p ok" + (f"; {pruned}" if pruned else "")


def foreign_arch_ready() -> None:
    """mmdebstrap runs arm64 maintainer scripts through qemu-user via binfmt_misc."""
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], check=False)
    if (binfmt / "qemu-aarch64").exists():
        return
    conf = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
    if not conf.exists():
        die("no qemu-user-static: apt-get install qemu-user-static (arm64 needs it to build)")
    rule = "".join(line for line in conf.read_text().splitlines() if not line.startswith("#"))
    try:
        (binfmt / "register").write_text(rule)
    except OSError as exc:
        die(f"cannot register qemu-aarch64 with binfmt_misc ({exc}): no arm64 bootstrap here")


def accel(arch: str) -> list[str]:
    """A hardware KVM only if it really is one; otherwise TCG with every core."""
    if arch == "amd64" and hardware_kvm():
        return ["-accel", "kvm", "-cpu", "host"]
    if arch == "arm64":
        return ["-machine", "virt", "-accel", "tcg,thread=multi", "-cpu", "cortex-a72"]
    return ["-accel", "tcg,thread=multi", "-cpu", "max"]


def hardware_kvm() -> bool:
    """/dev/kvm can be a paravirtual one that only runs specially built guests (Debian's
    kernel hangs there): require the CPU's vmx/svm flags as well as an openable node."""
    flags = Path("/proc/cpuinfo").read_text()
    if " vmx" not in flags and " svm" not in flags:
        return False
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError:
        return False
    return os.environ.get("VMTEST_KVM", "1") != "0"


def prune(cache: Path, arch: str, in_use: list[Path]) -> str:
    """Touch what this run uses, delete this arch's images, wheels and kept or failed
    runs' work dirs that nothing has used for STALE_AFTER_S (another checkout's key may
    still be in use: only age decides). A build killed half-way is left to the operator:
    its root may still have /proc and /dev mounted in it."""
    now = time.time()
    for path in in_use:
        if path.exists():
            os.utime(path, (now, now))
    gone = []
    entries = [cache.glob(f"{kind}-{arch}-*") for kind in ("image", "wheels", "vmtest")]
    for old in [path for found in entries for path in found]:
        if old in in_use or not old.is_dir() or now - old.stat().st_mtime < STALE_AFTER_S:
            continue
        shutil.rmtree(old, ignore_errors=True)
        gone.append(old.name)
    return f"deleted {', '.join(gone)}: unused for {STALE_AFTER_S // 86400} days" if gone else ""


def requirements() -> list[str]:
    """The project's dependencies, the test run's few extras, and the build backend:
    everything the guest's pip needs, without the index."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    build = project["build-system"]["requires"]
    deps = project["project"]["dependencies"]
    return sorted({*deps, *build, "pip", "wheel", "pytest>=8", "hypothesis>=6.100"})


def wheel_dir(arch: str, cache: Path) -> Path:
    key = hashlib.sha256("\n".join([arch, "cp311", *requirements()]).encode()).hexdigest()
    return cache / f"wheels-{arch}-{key[:16]}"


def wheels(arch: str, cache: Path, log: Path) -> str:
    reqs = requirements()
    target = wheel_dir(arch, cache)
    if (target / ".complete").exists():
        return f"cached: {len(list(target.glob('*.whl')))} wheels in {target.name}"
    target.mkdir(parents=True, exist_ok=True)
    machine = ARCHES[arch]["pip"]
    platforms = [a for tag in GLIBC_TAGS for a in ("--platform", f"{tag}_{machine}")]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary", ":all:", "--python-version", "3.11", "--implementation", "cp",
           *platforms, "-d", str(target), *reqs]  # fmt: skip
    with log.open("a") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        die(f"pip download for {arch} failed (see {log})")
    (target / ".complete").write_text("\n".join(reqs) + "\n")
    return f"downloaded {len(list(target.glob('*.whl')))} wheels into {target.name}"


def checkout_tar(dest: Path) -> str:
    """The checkout's tracked and new (not ignored) files as they are now: what an
    operator's clone holds."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    files = [f.decode() for f in listed if f and (ROOT / f.decode()).is_file()]
    subprocess.run(["tar", "-C", str(ROOT), "-cf", str(dest), "--", *files], check=True)
    return f"{len(files)} files"


class Run:
    def __init__(self, arch: str, image: Image, wheel_dir: Path, work: Path, steps: Steps):
        self.arch, self.image, self.wheel_dir = arch, image, wheel_dir
        self.work, self.steps = work, steps
        self.share = work / "share"
        self.out = self.share / "out"
        self.disk = work / "disk.qcow2"
        self.seen = 0

    def prepare(self) -> str:
        self.out.mkdir(parents=True)
        shutil.copy(ROOT / "tests/vm/guest_check.py", self.share / "guest_check.py")
        detail = checkout_tar(self.share / "src.tar")
        # The run's own disk: a qcow2 overlay over the cached image, kept across the
        # power cut and thrown away with the run (the cached image is never written).
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                        str(self.image.disk), str(self.disk)], check=True)  # fmt: skip
        return detail

    def command(self, serial: Path) -> list[str]:
        info = ARCHES[self.arch]
        cmd = ["nice", "-n", "19", info["qemu"], *accel(self.arch), "-smp", "2", "-m", "2048",
               "-nographic", "-no-reboot", "-serial", f"file:{serial}", "-monitor", "none",
               "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd),
               "-append", f"root=/dev/vda rw console={info['console']} quiet systemd.show_status=0",
               "-drive", f"file={self.disk},if=virtio,format=qcow2,cache=writeback",
               "-virtfs", f"local,path={self.share},mount_tag=vmtest,security_model=none,id=share",
               "-virtfs", f"local,path={self.wheel_dir},mount_tag=wheels,security_model=none,"
               "readonly=on,id=wheels",
               "-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0"]  # fmt: skip
        return cmd

    def boot(self, phase: int) -> None:
        serial = self.work / f"serial-{phase}.log"
        limit = BOOT_LIMITS[self.arch][phase - 1]
        started = time.monotonic()
        proc = subprocess.Popen(self.command(serial), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        stop = threading.Event()
        follower = threading.Thread(target=self.follow, args=(stop,), daemon=True)
        follower.start()
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.steps.line(f"boot {phase}", False, time.monotonic() - started,
                            f"the VM did not power off within {limit} s; serial log tail:\n"
                            + tail(serial))  # fmt: skip
        finally:
            stop.set()
            follower.join()
            self.follow(None)
        if proc.returncode not in (0, -9) and proc.stderr is not None:
            err = proc.stderr.read().decode(errors="replace")
            self.steps.line(f"qemu (boot {phase})", False, 0, f"exit {proc.returncode}: {err}")
        if not (self.out / f"phase{phase}.done").exists():
            took = time.monotonic() - started
            detail = "serial log tail:\n" + tail(serial)
            self.steps.line(f"boot {phase} finished its checks", False, took, detail)

    def follow(self, stop: threading.Event | None) -> None:
        """Print the guest's step lines as they land on the share."""
        while True:
            path = self.out / "results.jsonl"
            lines = path.read_text().splitlines() if path.exists() else []
            for raw in lines[self.seen :]:
                if not raw.endswith("}"):
                    break
                item = json.loads(raw)
                self.seen += 1
                self.steps.line(item["step"], item["ok"], item["seconds"], item["detail"])
            if stop is None or stop.wait(2):
                return


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no serial output)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/vmtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=sorted(ARCHES), default="amd64")
    parser.add_argument("--keep", action="store_true", help="keep the run's disk, share and logs")
    parser.add_argument("--rebuild", action="store_true", help="build the image even if cached")
    args = parser.parse_args()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "puccicam-vmtest"
    steps = Steps()
    image = Image(cache, args.arch)
    in_use = [image.dir, wheel_dir(args.arch, cache)]
    steps.run("host: qemu, mmdebstrap, disk space, 9p", lambda: preflight(args.arch, cache, in_use))
    log = cache / f"build-{args.arch}.log"

    def build() -> str:
        if image.ready() and not args.rebuild:
            return f"cached: {image.dir.name}, kernel {image.info.read_text().strip()}"
        log.write_text("")
        image.build(log)
        return f"built {image.dir.name}, kernel {image.info.read_text().strip()} (log {log})"

    steps.run(f"image: Debian 12 {args.arch} with v4l2loopback for the guest kernel", build)
    steps.run(f"wheels for {args.arch} (no source builds)", lambda: wheels(args.arch, cache, log))
    work = Path(tempfile.mkdtemp(prefix=f"vmtest-{args.arch}-", dir=cache))
    run = Run(args.arch, image, wheel_dir(args.arch, cache), work, steps)
    try:
        steps.run("share: the checkout as an operator's clone", run.prepare)
        run.boot(1)
        if (run.out / "phase1.done").exists():
            run.boot(2)
        figures = run.out / "figures.json"
        if figures.exists():
            print(f"vmtest: figures ({args.arch}): {figures.read_text().strip()}", flush=True)
            shutil.copy(figures, cache / f"figures-{args.arch}.json")
    finally:
        if args.keep or steps.failed:
            print(f"vmtest: the run's files are kept in {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    total = time.monotonic() - steps.started
    verdict = "FAILED" if steps.failed else "passed"
    print(f"vmtest: {args.arch} {verdict} in {total:.0f} s", flush=True)
    # The plain closing line CI reads.
    print(f"vmtest: {steps.count - len(steps.failed)} passed, {len(steps.failed)} failed")
    sys.exit(1 if steps.failed else 0)


if __name__ == "__main__":
    main()
