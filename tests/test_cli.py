"""The puccicam command as an operator uses it, including the real grabber process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from puccicam.cli import main
from tests.helpers.frames import BAD, FRAMES_DIR, GOOD


@pytest.fixture
def runner():
    return CliRunner()


def test_check_prints_a_line_per_file_and_exits_1_on_any_rejection(runner):
    files = [str(FRAMES_DIR / n) for n in ("good-chelsea.jpg", "bad-truncated.jpg")]
    result = runner.invoke(main, ["check", *files])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"{files[0]}: ok"
    assert lines[1].startswith(f"{files[1]}: rejected: truncated: ")


def test_check_all_good_exits_0(runner):
    result = runner.invoke(main, ["check", *(str(FRAMES_DIR / n) for n in GOOD)])
    assert result.exit_code == 0 and result.output.count(": ok") == len(GOOD)


def test_check_every_bad_fixture(runner):
    result = runner.invoke(main, ["check", *(str(FRAMES_DIR / n) for n in BAD)])
    assert result.exit_code == 1 and result.output.count(": rejected: ") == len(BAD)


def test_check_missing_file(runner, tmp_path):
    result = runner.invoke(main, ["check", str(tmp_path / "nope.jpg")])
    assert result.exit_code == 1 and "rejected: unreadable: No such file" in result.output


def test_grab_once_saves_a_photo_that_check_accepts(runner, tmp_path):
    data = tmp_path / "data"
    args = ["grab", "--once", "--data-dir", str(data), "--source", f"replay:{FRAMES_DIR}"]
    result = runner.invoke(main, args, env={"PUCCICAM_CAMERA_WARMUP_DELAY": "0"})
    assert result.exit_code == 0, result.output
    photo = Path(result.output.strip().splitlines()[-1])
    assert photo.is_file() and photo.is_relative_to(data / "photos")
    assert runner.invoke(main, ["check", str(photo)]).exit_code == 0
    status = runner.invoke(main, ["status", "--data-dir", str(data)])
    assert "last photo:" in status.output and photo.name in status.output
    as_json = json.loads(runner.invoke(main, ["status", "--json", "--data-dir", str(data)]).output)
    assert as_json["saved"] == 1


def test_grab_once_without_camera_fails_with_a_clear_message(runner, tmp_path):
    result = runner.invoke(
        main, ["grab", "--once", "--data-dir", str(tmp_path), "--source", "/dev/video99"]
    )
    assert result.exit_code == 1
    assert "Error: camera /dev/video99 could not be opened: is it plugged in" in result.output


def test_bad_option_names_the_key(runner, tmp_path):
    result = runner.invoke(
        main, ["grab", "--once", "--data-dir", str(tmp_path), "--interval", "0.01"]
    )
    assert result.exit_code == 1
    assert "capture.interval (from command line): must be at least 0.2" in result.output


def test_bad_config_file_names_the_key(runner, tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text("[storage]\nretention_hours = -1\n")
    result = runner.invoke(main, ["prune", "--config", str(toml)])
    assert result.exit_code == 1 and "storage.retention_hours" in result.output


def test_status_before_any_run(runner, tmp_path):
    result = runner.invoke(main, ["status", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "the grabber has not run" in result.output


def test_prune_reports_what_it_deleted(runner, tmp_path, good_frame):
    from camera.store import PhotoStore

    store = PhotoStore(tmp_path / "photos")
    store.save(good_frame, time.time() - 2 * 86400)
    store.save(good_frame, time.time() - 60)
    result = runner.invoke(main, ["prune", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0 and "deleted 1 photo(s) older than 24 h" in result.output
    assert len(list(store.photos())) == 1


def _start_grabber(data: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "puccicam",
            "grab",
            "--data-dir",
            str(data),
            "--source",
            f"replay:{FRAMES_DIR}",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PUCCICAM_CAMERA_WARMUP_DELAY": "0", **(env or {})},
    )


def _wait_for_photos(data: Path, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list((data / "photos").rglob("*Z.jpg"))) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} photos after {timeout} s")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_real_grabber_exits_0_within_2_s_and_leaves_no_temp(tmp_path, signum):
    data = tmp_path / "data"
    proc = _start_grabber(data, "--interval", "0.2")
    try:
        _wait_for_photos(data, 8)  # past the warm-up, into the replayed corrupt frames
        sent = time.monotonic()
        proc.send_signal(signum)
        proc.wait(timeout=5)
        elapsed = time.monotonic() - sent
    finally:
        proc.kill()
    _out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert elapsed < 2
    assert not list(data.rglob(".tmp-*"))
    assert "frame rejected" in err  # the replayed corrupt frames show in the log
    assert "grabber stopped after" in err


def test_journald_lines_carry_syslog_priorities(tmp_path):
    data = tmp_path / "data"
    proc = _start_grabber(data, "--interval", "0.2", env={"JOURNAL_STREAM": "8:1234"})
    try:
        _wait_for_photos(data, 2)
        proc.terminate()
        proc.wait(timeout=5)
    finally:
        proc.kill()
    _out, err = proc.communicate()
    lines = err.splitlines()
    assert lines and all(line[:3] in ("<6>", "<4>", "<3>", "<7>") for line in lines)
    assert any(line.startswith("<6>camera.grabber: photo ") for line in lines)


@pytest.mark.parametrize(
    "command",
    [
        ["grab", "--once"],
        ["config"],
        ["check", str(FRAMES_DIR / "good-chelsea.jpg")],
        ["prune"],
        ["status"],
        ["user", "list"],
        ["serve"],
        ["demo"],
    ],
)
def test_every_command_takes_the_common_options(runner, command):
    for option in ("--config", "--data-dir", "--log-level"):
        result = runner.invoke(main, [*command, "--help"])
        assert option in result.output, (command, option)


def test_common_options_before_the_subcommand(runner, tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text(f'data_dir = "{tmp_path / "from-file"}"\n')
    result = runner.invoke(main, ["--config", str(toml), "config"])
    assert result.exit_code == 0 and f"data dir {tmp_path / 'from-file'}" in result.output
    result = runner.invoke(main, ["--data-dir", str(tmp_path / "x"), "config"])
    assert f"data dir {tmp_path / 'x'}" in result.output
    # The subcommand's own option wins over the group's.
    result = runner.invoke(
        main, ["--data-dir", str(tmp_path / "x"), "config", "--data-dir", str(tmp_path / "y")]
    )
    assert f"data dir {tmp_path / 'y'}" in result.output


def test_serve_names_an_unusable_data_dir_not_the_port(runner, tmp_path):
    from tests.helpers.live import free_port

    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    port = str(free_port())  # a port anyone may listen on: only the data dir is wrong
    result = runner.invoke(main, ["serve", "--data-dir", str(blocker / "data"), "--port", port])
    assert result.exit_code == 1
    assert "data dir" in result.output and "cannot listen" not in result.output
    assert "Traceback" not in result.output


def test_serve_on_a_port_in_use_says_so(runner, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(main, ["serve", "--data-dir", str(tmp_path), "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


def test_camera_package_depends_on_nothing_above_it():
    camera = Path(__file__).resolve().parents[1] / "camera"
    for module in camera.glob("*.py"):
        text = module.read_text()
        for layer in ("webapp", "puccicam"):
            assert f"from {layer}" not in text and f"import {layer}" not in text, module


# -- the common options, for real -------------------------------------------------------


def test_check_takes_the_common_options_for_real(runner, tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text("[capture]\ninterval = 60\n")
    result = runner.invoke(
        main,
        ["check", "--config", str(toml), "--data-dir", str(tmp_path / "d"), "--log-level",
         "debug", str(FRAMES_DIR / "good-chelsea.jpg")],
    )  # fmt: skip
    assert result.exit_code == 0 and result.output.endswith(": ok\n"), result.output
    assert not (tmp_path / "d").exists()  # check writes nothing


# -- serve and demo: listen first, then create state --------------------------------------


def test_serve_on_an_unknown_host_is_one_line(runner, tmp_path):
    data = tmp_path / "data"
    result = runner.invoke(main, ["serve", "--data-dir", str(data), "--host", "nosuchhost.invalid"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: cannot listen on nosuchhost.invalid:8080: ")
    assert result.output.count("\n") == 1 and result.exception.__class__ is SystemExit
    assert not data.exists()


@pytest.mark.parametrize("command", [["serve"], ["demo"]])
def test_a_port_in_use_leaves_no_state_behind(runner, tmp_path, command):
    import socket

    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(main, [*command, "--data-dir", str(data), "--port", str(port)])
    assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output
    assert not data.exists()  # no data dir, secret key, database or demo account


def _run_demo(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, int]:
    from tests.helpers.live import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "puccicam", "demo", "--port", str(port), "--interval", "60", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    return proc, port


def _demo_until_ctrl_c(tmp_path: Path, while_up, *args: str) -> tuple[int, str]:
    """Run ``puccicam demo``, call ``while_up`` once it answers, then Ctrl-C it; it must
    exit 0. Returns (port, what it wrote to stderr)."""
    from tests.helpers.live import wait_until_answering

    proc, port = _run_demo(tmp_path, *args)
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/healthz", proc)
        if while_up is not None:
            while_up()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    _out, err = proc.communicate()
    assert proc.returncode == 0, err
    return port, err


@pytest.mark.slow
def test_demo_removes_its_fresh_data_dir_at_exit(tmp_path):
    def while_up() -> None:
        made = list(tmp_path.glob("puccicam-demo-*"))
        assert len(made) == 1 and (made[0] / "puccicam.sqlite3").exists()

    port, err = _demo_until_ctrl_c(tmp_path, while_up)
    assert f"http://127.0.0.1:{port}/" in err and "removed at exit" in err
    assert not list(tmp_path.glob("puccicam-demo-*"))


@pytest.mark.slow
def test_demo_keeps_a_named_data_dir_and_listens_where_told(tmp_path):
    data = tmp_path / "kept"
    port, err = _demo_until_ctrl_c(tmp_path, None, "--host", "0.0.0.0", "--data-dir", str(data))
    url = next(line for line in err.splitlines() if "puccicam demo on http://" in line)
    assert "0.0.0.0" not in url and f":{port}/" in url  # an address a phone can open
    assert (data / "puccicam.sqlite3").exists()


# -- a data dir belongs to one user ------------------------------------------------------

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown to another user")


@as_root
@pytest.mark.parametrize("command", [["prune"], ["grab", "--once"], ["user", "list"], ["serve"]])
def test_root_is_refused_a_data_dir_another_user_owns(runner, tmp_path, command):
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 1000, 1000)
    result = runner.invoke(main, [*command, "--data-dir", str(data)])
    assert result.exit_code == 1, result.output
    assert f"data dir {data} belongs to " in result.output
    assert "chown -R " in result.output and f": {data})" in result.output
    assert list(data.iterdir()) == []  # nothing written as root


@as_root
def test_state_left_by_another_user_is_refused_with_the_chown_that_repairs_it(runner, tmp_path):
    data = tmp_path / "data"
    (data / "photos").mkdir(parents=True)
    os.chown(data / "photos", 1000, 1000)  # what "sudo puccicam grab --once" used to leave
    result = runner.invoke(main, ["prune", "--data-dir", str(data)])
    assert result.exit_code == 1, result.output
    assert f"photos in {data} belong(s) to another user" in result.output
    assert f"fix with sudo chown -R root: {data}" in result.output


def test_read_only_commands_do_not_mind_the_owner(runner, tmp_path):
    if os.geteuid() == 0:
        os.chown(tmp_path, 1000, 1000)
    assert runner.invoke(main, ["config", "--data-dir", str(tmp_path)]).exit_code == 0


# -- status -----------------------------------------------------------------------------


def _status_lines(runner, data: Path) -> dict[str, str]:
    result = runner.invoke(main, ["status", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    return {k: v.strip() for k, v in (line.split(":", 1) for line in result.output.splitlines())}


def test_status_of_a_grabber_retrying_a_camera_never_found(runner, tmp_path):
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "puccicam", "grab", "--data-dir", str(data), "--source",
         "/dev/video99"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not (data / "status.json").exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        lines = _status_lines(runner, data)
        assert lines["grabber"] == f"running (pid {proc.pid})"
        assert lines["camera"] == "not found"
        assert re.fullmatch(r"in \d+ s \(camera not found\)", lines["next attempt"])
        proc.terminate()
        proc.wait(timeout=5)
    finally:
        proc.kill()
    _out, err = proc.communicate()
    assert "camera /dev/video99 not found" in err and "lost" not in err
    lines = _status_lines(runner, data)
    assert lines["grabber"] == f"not running (last pid {proc.pid})"


def test_status_does_not_take_a_reused_pid_for_the_grabber(runner, tmp_path):
    from camera.status import Status, write_status

    write_status(tmp_path / "status.json", Status(pid=1, camera="ok", next_capture=time.time()))
    assert _status_lines(runner, tmp_path)["grabber"] == "not running (last pid 1)"


def test_status_shows_the_camera_mode_and_viewers(runner, tmp_path):
    from camera.status import Status, write_status

    write_status(tmp_path / "status.json", Status(pid=1, camera="ok"))
    assert _status_lines(runner, tmp_path)["mode"] == "interval"
    write_status(tmp_path / "status.json", Status(pid=1, camera="ok", mode="live", viewers=3))
    assert _status_lines(runner, tmp_path)["mode"] == "live view, 3 viewer(s)"


@pytest.fixture
def reused_pid():
    """A live process that is no grabber but names a puccicam path and the word grab."""
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "/var/lib/puccicam", "grab"]
    )
    yield sleeper.pid
    sleeper.kill()
    sleeper.wait()


def test_status_and_grab_once_agree_a_pid_naming_a_puccicam_path_is_no_grabber(
    runner, tmp_path, reused_pid
):
    from camera.status import Status, grabber_running, live_grabber, write_status

    status = Status(pid=reused_pid, camera="ok", next_capture=time.time() + 60)
    write_status(tmp_path / "status.json", status)
    assert grabber_running(reused_pid) is False
    assert live_grabber(status) is None
    assert _status_lines(runner, tmp_path)["grabber"] == f"not running (last pid {reused_pid})"


@pytest.mark.parametrize(
    ("argv", "grabber"),
    [
        (["/opt/puccicam/venv/bin/puccicam", "grab"], True),
        (["puccicam", "--data-dir", "/var/lib/puccicam", "grab", "--interval", "60"], True),
        (["/usr/bin/python3", "/opt/puccicam/venv/bin/puccicam", "grab"], True),
        (["python3", "-m", "puccicam", "grab", "--once"], True),
        (["python3.11", "-X", "dev", "-u", "-mpuccicam", "grab"], True),
        (["/opt/puccicam/venv/bin/puccicam", "serve"], False),
        (["less", "/var/lib/puccicam/status.json"], False),
        (["less", "/var/lib/puccicam", "grab"], False),
        (["vim", "/home/me/puccicam/grab.py"], False),
        (["python3", "-c", "pass", "/var/lib/puccicam", "grab"], False),
        (["python3", "/home/me/puccicam/tool.py", "grab"], False),
        (["python3", "-m", "pytest", "puccicam", "grab"], False),
        ([], False),
    ],
)
def test_a_grabber_is_a_puccicam_entry_point_running_grab(argv, grabber):
    from camera.status import is_grab_command

    assert is_grab_command(argv) is grabber


def test_a_grabber_that_cannot_be_seen_is_unknown_to_status_and_no_refusal(
    runner, tmp_path, monkeypatch, reused_pid
):
    from camera.status import Status, grabber_running, live_grabber, write_status

    status = Status(pid=reused_pid, camera="ok", next_capture=time.time() + 60)
    write_status(tmp_path / "status.json", status)
    real_read_bytes = Path.read_bytes

    def hidden(path: Path) -> bytes:  # /proc mounted with hidepid=1, another user's pid
        if path == Path(f"/proc/{reused_pid}/cmdline"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", hidden)
    assert grabber_running(reused_pid) is None
    assert live_grabber(status) is None  # refuse only a grabber known to be there
    grabber = _status_lines(runner, tmp_path)["grabber"]
    assert grabber == f"unknown: pid {reused_pid} is not visible to this user"


# -- check ------------------------------------------------------------------------------


def test_check_a_directory_says_unreadable(runner, tmp_path):
    result = runner.invoke(main, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == f"{tmp_path}: rejected: unreadable: Is a directory\n"


def test_readme_documents_every_reason_check_can_print():
    import camera

    source = "".join(p.read_text() for p in Path(camera.__file__).parent.glob("*.py"))
    reasons = set(re.findall(r'CorruptFrame\(\s*"([a-z_]+)"', source)) | {"unreadable"}
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("### `puccicam check FILE...`", 1)[1].split("\n### ", 1)[0]
    rows = {
        m for row in re.findall(r"^\| (.*?) \|", table, re.M) for m in re.findall(r"`(\w+)`", row)
    }
    assert reasons <= rows, f"README's check table lacks {reasons - rows}"


@pytest.mark.slow
def test_grab_once_refuses_while_a_grabber_runs_with_the_same_data_dir(runner, tmp_path):
    data = tmp_path / "data"
    proc = _start_grabber(data, "--interval", "300", env={"PUCCICAM_LOG_LEVEL": "WARNING"})
    once = ["grab", "--once", "--data-dir", str(data), "--source", f"replay:{FRAMES_DIR}"]
    env = {"PUCCICAM_CAMERA_WARMUP_DELAY": "0"}
    try:
        deadline = time.monotonic() + 20
        while not (data / "status.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        status_before = (data / "status.json").read_bytes()
        result = runner.invoke(main, once, env=env)
        assert result.exit_code == 1
        assert f"a grabber (pid {proc.pid}) is running with data dir {data}" in result.output
        assert "systemctl stop puccicam-grabber" in result.output and "--force" in result.output
        assert (data / "status.json").read_bytes() == status_before  # untouched
        forced = runner.invoke(main, [*once, "--force"], env=env)
        assert forced.exit_code == 0, forced.output
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # Stopped cleanly, or killed leaving its pid behind: either way --once works again.
    assert runner.invoke(main, once, env=env).exit_code == 0


def test_grab_once_is_not_refused_for_a_grabber_that_is_gone(tmp_path):
    from camera.status import Status, live_grabber

    sleeper = subprocess.Popen(["sleep", "30"])  # a pid reused by another program
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        running = Status(pid=sleeper.pid, next_capture=time.time() + 60)
        assert live_grabber(running) is None
        assert live_grabber(Status(pid=dead.pid, next_capture=time.time() + 60)) is None
        assert live_grabber(Status(pid=sleeper.pid, next_capture=None)) is None  # stopped
    finally:
        sleeper.kill()
        sleeper.wait()
