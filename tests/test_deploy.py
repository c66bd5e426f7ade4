"""deploy/: the units verify and score well, the scripts pass shellcheck, the Caddyfile
validates, and install.sh lays down what it should (into a temporary root)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
UNITS = ["puccicam-grabber.service", "puccicam-web.service"]
SCRIPTS = [DEPLOY / "install.sh", *sorted((ROOT / "scripts").iterdir()), ROOT / ".ci" / "run"]


def tool(name: str) -> str:
    """The tool's path; CI installs every one (.ci/run), so there a missing one fails."""
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: .ci/run should have installed it")
        pytest.skip(f"{name} is not installed here")
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_pass_shellcheck(script):
    result = subprocess.run(
        [tool("shellcheck"), str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def _unit_for_verify(unit: str, tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's puccicam, which exists here."""
    puccicam = ROOT / ".venv" / "bin" / "puccicam"
    if not puccicam.exists():
        puccicam = Path(shutil.which("puccicam") or "/bin/true")
    text = (DEPLOY / unit).read_text().replace("/opt/puccicam/venv/bin/puccicam", str(puccicam))
    path = tmp_path / unit
    path.write_text(text)
    return path


@pytest.mark.parametrize("unit", UNITS)
def test_units_verify_cleanly(unit, tmp_path):
    path = _unit_for_verify(unit, tmp_path)
    result = subprocess.run(
        [tool("systemd-analyze"), "verify", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize(
    ("unit", "limit"), [("puccicam-grabber.service", 2.0), ("puccicam-web.service", 1.5)]
)
def test_units_are_hardened(unit, limit, tmp_path):
    path = _unit_for_verify(unit, tmp_path)
    result = subprocess.run(
        [tool("systemd-analyze"), "security", "--offline=true", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout).group(1))
    assert score <= limit, result.stdout[-2000:]


def test_units_keep_the_promised_settings():
    grabber = (DEPLOY / "puccicam-grabber.service").read_text()
    for line in ["Type=notify", "WatchdogSec=", "Restart=on-failure", "SupplementaryGroups=video",
                 "DevicePolicy=closed", "DeviceAllow=char-video4linux rw", "ProtectSystem=strict",
                 "ReadWritePaths=/var/lib/puccicam", "NoNewPrivileges=yes", "PrivateTmp=yes",
                 "ProtectHome=yes", "User=puccicam"]:  # fmt: skip
        assert line in grabber, line
    web = (DEPLOY / "puccicam-web.service").read_text()
    assert "DeviceAllow" not in web and "PrivateDevices=yes" in web and "User=puccicam" in web


def test_caddyfile_validates():
    result = subprocess.run(
        [
            tool("caddy"),
            "validate",
            "--config",
            str(DEPLOY / "Caddyfile"),
            "--adapter",
            "caddyfile",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "reverse_proxy 127.0.0.1:8080" in (DEPLOY / "Caddyfile").read_text()


def _install(prefix: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(DEPLOY / "install.sh"), "--root", str(prefix), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow  # a venv and a pip install, twice: about 25 s
def test_install_into_a_root_prefix_then_again_then_uninstall(tmp_path):
    prefix = tmp_path / "root"
    first = _install(prefix)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "user add NAME" in first.stdout  # the next steps are printed

    puccicam = prefix / "opt/puccicam/venv/bin/puccicam"
    config = prefix / "etc/puccicam/puccicam.toml"
    data = prefix / "var/lib/puccicam"
    assert (
        subprocess.run([str(puccicam), "--version"], capture_output=True, check=False).returncode
        == 0
    )
    assert (prefix / "opt/puccicam/src/templates/gallery.html").is_file()
    assert _mode(config) == 0o640 and _mode(data) == 0o750
    assert (
        _mode(data / "secret_key") == 0o600 and len((data / "secret_key").read_text().strip()) >= 40
    )
    for unit in UNITS:
        assert (prefix / "etc/systemd/system" / unit).read_text() == (DEPLOY / unit).read_text()
    text = config.read_text()
    assert 'data_dir = "/var/lib/puccicam"' in text and "https = true" in text
    assert 'trusted_proxy = "127.0.0.1"' in text and "# interval = 300.0" in text
    checked = subprocess.run(
        [str(puccicam), "config", "--config", str(config), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PUCCICAM_")},
        check=False,
    )
    assert checked.returncode == 0, checked.stderr

    # Again: the owner's config and key survive an upgrade.
    config.write_text(text + "\n# edited by the owner\n")
    key = (data / "secret_key").read_text()
    (data / "photos").mkdir()
    again = _install(prefix)
    assert again.returncode == 0, again.stderr[-3000:]
    assert config.read_text().endswith("# edited by the owner\n")
    assert (data / "secret_key").read_text() == key

    removed = _install(prefix, "--uninstall")
    assert removed.returncode == 0
    assert not (prefix / "opt/puccicam").exists()
    assert not (prefix / "etc/systemd/system/puccicam-web.service").exists()
    assert (data / "photos").is_dir() and config.is_file()  # photos and accounts are kept

    purged = _install(prefix, "--uninstall", "--purge")
    assert purged.returncode == 0 and not data.exists() and not config.exists()


def test_install_refuses_purge_alone(tmp_path):
    result = _install(tmp_path, "--purge")
    assert result.returncode == 2 and "--purge goes with --uninstall" in result.stderr
