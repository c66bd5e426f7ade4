"""Real ``puccicam serve`` and ``puccicam grab`` processes, for load, live and benchmarks.

The server runs in its own process, as in production, so the load generator (wrk) and
the test never share its CPU time or its GIL, and its memory can be read from /proc.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

from tests.helpers.mjpeg import MjpegStream

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def free_port() -> int:
    """A loopback port free right now (another process could take it: rare enough)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answering(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    """Poll ``url`` until the server answers at all; fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except urllib.error.HTTPError:
            return  # answering (healthz says 503 while no photo is fresh)
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class ServerProcess:
    """``puccicam serve --data-dir DIR`` on a free port; ``env`` adds PUCCICAM_* settings."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, log: Path | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "puccicam", "serve", "--data-dir", str(data_dir),
                "--port", str(self.port)]  # fmt: skip
        self.log = log
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
        try:
            # Settings from the developer's shell would change what is measured: only
            # the test's own ``env`` configures the server.
            inherited = {k: v for k, v in os.environ.items() if not k.startswith("PUCCICAM_")}
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=out, env={**inherited, **(env or {})}
            )
        finally:
            if log:
                out.close()
        try:
            wait_until_answering(self.base + "/healthz", self.proc)
        except BaseException:
            self.proc.kill()  # never leave a server behind a failed start
            self.proc.wait()
            raise

    def rss_kb(self) -> int:
        """Resident memory of the server process now, in KiB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))

    def stop(self) -> int:
        """SIGTERM and wait; the exit code (killed after 30 s if it does not stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode


class GrabberProcess:
    """``puccicam grab --data-dir DIR`` as the service runs it; ``env`` adds PUCCICAM_*."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, log: Path | None = None):
        args = [sys.executable, "-m", "puccicam", "grab", "--data-dir", str(data_dir)]
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("PUCCICAM_")}
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
        try:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=out, env={**inherited, **(env or {})}
            )
        finally:
            if log:
                out.close()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` and wait (SIGKILL after 15 s); the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()
        return self.proc.returncode


def login(base: str, username: str, password: str) -> str:
    """Log in through the real form; the session cookie as a ``Cookie:`` header value."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/login").read().decode()
    form = {"username": username, "password": password, "csrf_token": CSRF.search(page)[1]}
    final = opener.open(base + "/login", data=urllib.parse.urlencode(form).encode())
    assert final.url.endswith("/gallery"), f"login as {username} failed"
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def login_form(base: str, username: str, password: str) -> tuple[str, str]:
    """A (cookie, form body) pair that logs in when POSTed, for a load generator."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/login").read().decode()
    form = {"username": username, "password": password, "csrf_token": CSRF.search(page)[1]}
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    return cookie, urllib.parse.urlencode(form)


PASSWORD = "live view password"


class LiveSite:
    """A data dir, a replay camera, the grabber and the server as processes, an owner
    logged in: live view end to end (tests/test_live.py, benchmarks/bench_live.py)."""

    def __init__(self, tmp: Path, frames: Path, **settings: str) -> None:
        self.data = tmp / "data"
        self.frames = frames  # the replay camera's directory
        # Unix socket paths are short (108 bytes): not under pytest's long tmp path.
        self.sockdir = Path(tempfile.mkdtemp(prefix="pl-", dir="/tmp"))
        self.env = {
            "PUCCICAM_LIVE_SOCKET": str(self.sockdir / "live.sock"),
            "PUCCICAM_CAMERA_SOURCE": f"replay:{self.frames}",
            "PUCCICAM_CAMERA_WARMUP_DELAY": "0.5",
            "PUCCICAM_CAMERA_WARMUP_FRAMES": "3",
            "PUCCICAM_CAPTURE_INTERVAL": "60",
            "PUCCICAM_WEB_BCRYPT_ROUNDS": "4",
            **settings,
        }
        self.grabber_log = tmp / "grabber.log"
        self.server_log = tmp / "server.log"
        self.puccicam("user", "add", "owner", "--password-stdin", stdin=PASSWORD + "\n")
        self.grabber = GrabberProcess(self.data, self.env, self.grabber_log)
        self.server = ServerProcess(self.data, self.env, self.server_log)
        self.port = self.server.port
        self.cookie = login(self.server.base, "owner", PASSWORD)

    def puccicam(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUCCICAM_")}
        return subprocess.run(
            [sys.executable, "-m", "puccicam", *args, "--data-dir", str(self.data)],
            input=stdin, capture_output=True, text=True, env={**env, **self.env}, check=True,
        )  # fmt: skip

    def stream(self, **kwargs) -> MjpegStream:
        return MjpegStream(self.port, self.cookie, **kwargs)

    def status(self) -> dict:
        """The grabber's status file; empty until it has written one."""
        try:
            return json.loads((self.data / "status.json").read_text())
        except FileNotFoundError:
            return {}

    def wait_for(self, predicate, seconds: float, what: str) -> float:
        started = time.monotonic()
        while not predicate():
            assert time.monotonic() - started < seconds, f"not within {seconds} s: {what}"
            time.sleep(0.05)
        return time.monotonic() - started

    def get(self, path: str, cookie: str | None = None) -> tuple[int, float]:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", path, headers={"Cookie": cookie or self.cookie})
        response = conn.getresponse()
        response.read()
        conn.close()
        return response.status, time.monotonic() - started

    def close(self) -> None:
        self.server.stop()
        self.grabber.stop()
        shutil.rmtree(self.sockdir, ignore_errors=True)
