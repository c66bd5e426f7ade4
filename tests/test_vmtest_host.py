"""scripts/vmtest's host side, the parts that decide before any VM boots: which apt
sources build the image, what is missing (a clear message, never a traceback), which
cached images are stale. The VM run itself is scripts/vmtest, run by .ci/run."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "vm"))
# tests/vm is not a package: host.py runs with the system python, beside image.py.
import host
import image


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_apt_sources_read_both_formats_and_keep_only_bookworm_main(tmp_path):
    write(
        tmp_path / "sources.list",
        "# a comment\n"
        "deb [signed-by=/usr/share/keyrings/a.gpg arch=amd64] http://mirror.test/debian "
        "bookworm main contrib\n"
        "deb-src http://mirror.test/debian bookworm main\n"
        "deb http://mirror.test/debian trixie main\n"
        "deb http://mirror.test/debian bookworm-backports contrib\n",
    )
    write(
        tmp_path / "sources.list.d" / "debian.sources",
        "Types: deb\nURIs: http://deb.test/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://security.test/debian-security\nSuites: bookworm-security\n"
        "Components: main non-free-firmware\n\n"
        "Types: deb\nURIs: http://off.test/debian\nSuites: bookworm\nComponents: main\n"
        "Enabled: no\n",
    )
    write(tmp_path / "sources.list.d" / "notes.txt", "deb http://ignored.test bookworm main\n")
    assert image.apt_sources("bookworm", tmp_path) == [
        "deb http://mirror.test/debian bookworm main",
        "deb http://deb.test/debian bookworm main",
        "deb http://deb.test/debian bookworm-updates main",
        "deb http://security.test/debian-security bookworm-security main",
    ]


def test_no_bookworm_source_is_a_clear_error(tmp_path):
    write(tmp_path / "sources.list", "deb http://mirror.test/ubuntu noble main\n")
    with pytest.raises(SystemExit, match="no apt source for Debian bookworm"):
        image.apt_sources("bookworm", tmp_path)


def test_missing_qemu_names_the_packages_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    with pytest.raises(SystemExit) as raised:
        host.preflight("amd64", tmp_path / "cache")
    message = str(raised.value)
    assert "qemu-system-x86_64" in message and "mmdebstrap" in message
    assert "apt-get install mmdebstrap qemu-utils qemu-system-x86" in message


def fake_tools(tmp_path, monkeypatch) -> None:
    """Every tool preflight looks for, on PATH, doing nothing; root as far as it asks."""
    bin_dir = tmp_path / "bin"
    for name in ("qemu-system-x86_64", "qemu-img", "mmdebstrap", "mke2fs"):
        write(bin_dir / name, "#!/bin/sh\n").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(host.os, "geteuid", lambda: 0)


def test_too_little_space_says_how_much(tmp_path, monkeypatch):
    fake_tools(tmp_path, monkeypatch)
    monkeypatch.setattr(host, "MIN_FREE_GB", 10**9)
    with pytest.raises(SystemExit, match=r"only [\d.]+ GB free under .*; needs 1000000000 GB"):
        host.preflight("amd64", tmp_path / "cache")


def test_stale_images_go_before_free_space_is_judged(tmp_path, monkeypatch):
    """Old images are what fills the cache: they are pruned first, so a full cache
    heals itself rather than stopping every run at the space check."""
    fake_tools(tmp_path, monkeypatch)
    cache = tmp_path / "cache"
    stale = write(cache / "image-amd64-old" / "base.qcow2", "x" * 4096).parent
    old = time.time() - host.STALE_AFTER_S - 60
    os.utime(stale, (old, old))
    real_usage = host.shutil.disk_usage

    def usage(path):  # "full" while the stale image is there
        free = 10 * 2**30 if not stale.exists() else 2**30
        return real_usage(path)._replace(free=free)

    monkeypatch.setattr(host.shutil, "disk_usage", usage)
    with pytest.raises(SystemExit, match="no virtio-9p device"):  # past the space check
        host.preflight("amd64", cache, [cache / "image-amd64-new"])
    assert not stale.exists()


def test_a_fake_kvm_is_not_taken_for_a_hardware_one(monkeypatch):
    """/dev/kvm that opens is not enough: without vmx/svm, TCG."""
    real = Path.read_text
    monkeypatch.setattr(
        Path,
        "read_text",
        lambda self, *a, **k: "flags : fpu sse2\n" if str(self) == "/proc/cpuinfo" else real(self),
    )
    assert host.hardware_kvm() is False
    assert host.accel("amd64") == ["-accel", "tcg,thread=multi", "-cpu", "max"]


def test_prune_deletes_only_stale_entries_of_its_own_arch(tmp_path):
    old = time.time() - host.STALE_AFTER_S - 60
    entries = {
        name: tmp_path / name
        for name in (
            "image-amd64-current",
            "wheels-amd64-current",
            "image-amd64-stale",
            "wheels-amd64-stale",
            "image-amd64-recent",
            "image-arm64-stale",
            "vmtest-amd64-failedlongago",
            "vmtest-amd64-failedtoday",
        )
    }
    for path in entries.values():
        write(path / "base.qcow2", "x")
    for name in (
        "image-amd64-current",
        "image-amd64-stale",
        "wheels-amd64-stale",
        "vmtest-amd64-failedlongago",
    ):
        os.utime(entries[name], (old, old))
    os.utime(entries["image-arm64-stale"], (old, old))
    in_use = [entries["image-amd64-current"], entries["wheels-amd64-current"]]

    said = host.prune(tmp_path, "amd64", in_use)

    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [
        "image-amd64-current",
        "image-amd64-recent",
        "image-arm64-stale",
        "vmtest-amd64-failedtoday",
        "wheels-amd64-current",
    ]
    assert "image-amd64-stale" in said and "wheels-amd64-stale" in said
    # What this run uses is marked used now, so the next run's prune keeps it.
    assert time.time() - entries["image-amd64-current"].stat().st_mtime < 60
    assert host.prune(tmp_path, "amd64", in_use) == ""


def test_image_key_changes_with_what_builds_it(monkeypatch):
    monkeypatch.setattr(image, "apt_sources", lambda: ["deb http://a.test/debian bookworm main"])
    before = image.image_key("amd64")
    assert image.image_key("arm64") != before
    monkeypatch.setattr(image, "PACKAGES", [*image.PACKAGES, "strace"])
    assert image.image_key("amd64") != before


def test_steps_print_one_line_each_and_count_failures(capsys):
    steps = host.Steps()
    steps.line("boot 1", True, 12.4, "45 s to the first check")
    steps.line("hung read", False, 3, "no restart")
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("ok   boot 1 (12 s): 45 s to the first check")
    assert "FAIL hung read (3 s): no restart" in out[1]
    assert (steps.count, steps.failed) == (2, ["hung read"])
    with pytest.raises(SystemExit, match="cannot go on after 'image'"):
        steps.run("image", lambda: host.die("mmdebstrap failed"))
    assert steps.failed[-1] == "image"
