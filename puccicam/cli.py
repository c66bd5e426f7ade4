"""The ``puccicam`` command: thin subcommands that build the config and call in.

Domain errors become ``click.ClickException`` here and nowhere else, so every failure
reaches the operator as one sentence saying what happened and what to do.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from camera.errors import CameraError, CorruptFrame
from puccicam import __version__
from puccicam.config import Config, ConfigError, load_config
from puccicam.logs import setup_logging

log = logging.getLogger(__name__)


def common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--config, --data-dir and --log-level, accepted by every subcommand."""

    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="TOML config file (default: $PUCCICAM_CONFIG, else built-in defaults).",
    )
    @click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Directory holding all state (default: $PUCCICAM_DATA_DIR).",
    )
    @click.option(
        "--log-level",
        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
        help="How much to log (default: $PUCCICAM_LOG_LEVEL or INFO).",
    )
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(*args, **kwargs)

    return wrapper


def build_config(
    config_path: Path | None, data_dir: Path | None, log_level: str | None, **overrides: Any
) -> Config:
    """Load the config (CLI options last) and set up logging, or exit with the bad key."""
    try:
        config = load_config(
            config_path,
            overrides={
                "data_dir": data_dir,
                "log_level": log_level.upper() if log_level else None,
                **overrides,
            },
        )
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    setup_logging(config.log_level)
    return config


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "never"
    moment = datetime.fromtimestamp(stamp, UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({time.time() - stamp:.0f} s ago)"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="puccicam")
def main() -> None:
    """puccicam: a pet camera with a private web gallery."""


@main.command()
@common_options
@click.option("--source", help="Camera: /dev/videoN, a by-id path, a file, a URL or replay:DIR.")
@click.option("--interval", type=float, help="Seconds between photos (at least 0.2).")
@click.option("--once", is_flag=True, help="Take one photo and exit (non-zero on failure).")
@click.option("--overlay/--no-overlay", default=None, help="Draw the timestamp banner or not.")
def grab(
    config_path: Path | None,
    data_dir: Path | None,
    log_level: str | None,
    source: str | None,
    interval: float | None,
    once: bool,
    overlay: bool | None,
) -> None:
    """Take a photo every interval (or --once) and keep the last 24 hours."""
    from camera.grabber import Grabber
    from camera.source import open_source

    config = build_config(
        config_path,
        data_dir,
        log_level,
        **{"camera.source": source, "capture.interval": interval, "capture.overlay": overlay},
    )
    cam, cap = config.camera, config.capture
    log.info(
        "puccicam %s: source %s, %dx%d q%d every %g s, keep %g h, data dir %s",
        __version__,
        cam.source,
        cap.width,
        cap.height,
        cap.jpeg_quality,
        cap.interval,
        config.storage.retention_hours,
        config.data_dir,
    )
    camera = open_source(
        cam.source,
        width=cap.width,
        height=cap.height,
        fps=cam.fps,
        buffer_size=cam.buffer_size,
        read_timeout=cam.read_timeout,
    )
    grabber = Grabber(config, camera)
    if once:
        try:
            photo = grabber.run_once()
        except CameraError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(grabber.store.path(photo.name))
        return

    def request_stop(signum: int, _frame: object) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        # Not stop.set() here: the main thread may hold the Event's lock right now.
        threading.Thread(target=grabber.stop.set, name="stop").start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        grabber.run()
    except CameraError as exc:
        raise click.ClickException(str(exc)) from None


@main.command("config")
@common_options
@click.option("--example", is_flag=True, help="Print every key, commented, at its default.")
def show_config(
    config_path: Path | None, data_dir: Path | None, log_level: str | None, example: bool
) -> None:
    """Check the configuration (exit 1 naming a bad key), or print an example file."""
    from puccicam.config import example_toml

    if example:
        click.echo(example_toml(), nl=False)
        return
    config = build_config(config_path, data_dir, log_level)
    click.echo(f"configuration ok; data dir {config.data_dir}")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(files: tuple[Path, ...]) -> None:
    """Validate JPEG files as the grabber would: one line each, exit 1 if any is rejected."""
    from camera.validate import validate_jpeg

    rejected = 0
    for path in files:
        try:
            validate_jpeg(path.read_bytes())
        except CorruptFrame as exc:
            rejected += 1
            click.echo(f"{path}: rejected: {exc.reason}: {exc.detail}")
        except OSError as exc:
            rejected += 1
            click.echo(f"{path}: rejected: unreadable: {exc.strerror}")
        else:
            click.echo(f"{path}: ok")
    sys.exit(1 if rejected else 0)


@main.command()
@common_options
def prune(config_path: Path | None, data_dir: Path | None, log_level: str | None) -> None:
    """Delete photos older than the retention window now (the grabber also does it)."""
    from camera.retention import Retention
    from camera.store import PhotoStore

    config = build_config(config_path, data_dir, log_level)
    retention = Retention(
        PhotoStore(config.photos_dir, config.thumbs_dir),
        config.storage.retention_hours * 3600,
        config.storage.min_free_mb * 2**20,
    )
    result = retention.prune(time.time())
    click.echo(
        f"deleted {result.expired} photo(s) older than {config.storage.retention_hours:g} h "
        f"and {result.for_space} more to keep {config.storage.min_free_mb} MB free"
    )


@main.command()
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print the raw status file.")
def status(
    config_path: Path | None, data_dir: Path | None, log_level: str | None, as_json: bool
) -> None:
    """Show what the grabber last did; exit 1 if it never ran with this data dir."""
    from dataclasses import asdict

    from camera.status import read_status

    config = build_config(config_path, data_dir, log_level)
    current = read_status(config.status_path)
    if current is None:
        raise click.ClickException(
            f"no status in {config.data_dir}: the grabber has not run with this data dir"
        )
    if as_json:
        click.echo(json.dumps(asdict(current), indent=1))
        return
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(current.rejected.items())) or "none"
    for label, value in [
        ("source", current.source),
        ("camera", current.camera),
        ("interval", f"{current.interval:g} s"),
        ("last attempt", _when(current.last_attempt)),
        ("last success", _when(current.last_success)),
        ("last photo", current.last_photo or "none"),
        ("next capture", _when(current.next_capture) if current.next_capture else "not scheduled"),
        ("saved", current.saved),
        ("failed", current.failed),
        ("rejected frames", rejected),
        ("last error", current.last_error or "none"),
    ]:
        click.echo(f"{label + ':':16} {value}")


def _app(config: Config):
    from webapp import create_app

    return create_app(config)


@contextlib.contextmanager
def _accounts(config_path: Path | None, data_dir: Path | None, log_level: str | None):
    """The accounts of this data dir; AccountError becomes a one-line error."""
    from webapp import state
    from webapp.accounts import AccountError

    app = _app(build_config(config_path, data_dir, log_level or "WARNING"))
    with app.app_context():
        try:
            yield state().accounts
        except AccountError as exc:
            raise click.ClickException(str(exc)) from None


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@main.group()
def user() -> None:
    """Manage the owners' accounts (nobody can log in until one exists)."""


password_stdin_option = click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input."
)


@user.command("add")
@common_options
@click.argument("name")
@click.option("--email", help="The owner's e-mail address.")
@password_stdin_option
def user_add(
    config_path: Path | None,
    data_dir: Path | None,
    log_level: str | None,
    name: str,
    email: str | None,
    password_stdin: bool,
) -> None:
    """Create an owner account (8 to 72 bytes of password)."""
    with _accounts(config_path, data_dir, log_level) as accounts:
        accounts.add(name, _read_password(password_stdin), email)
    click.echo(f"account {name} created")


@user.command("list")
@common_options
def user_list(config_path: Path | None, data_dir: Path | None, log_level: str | None) -> None:
    """List the owner accounts."""
    with _accounts(config_path, data_dir, log_level) as accounts:
        users = accounts.all()
        for account in users:
            click.echo(f"{account.username}\t{account.email or '-'}\t{account.created_at:%Y-%m-%d}")
    if not users:
        click.echo("no accounts yet: create one with 'puccicam user add NAME'")


@user.command("remove")
@common_options
@click.argument("name")
def user_remove(
    config_path: Path | None, data_dir: Path | None, log_level: str | None, name: str
) -> None:
    """Delete an owner account (its sessions end at once)."""
    with _accounts(config_path, data_dir, log_level) as accounts:
        accounts.remove(name)
    click.echo(f"account {name} removed")


@user.command("passwd")
@common_options
@click.argument("name")
@password_stdin_option
def user_passwd(
    config_path: Path | None,
    data_dir: Path | None,
    log_level: str | None,
    name: str,
    password_stdin: bool,
) -> None:
    """Change an owner's password; every session of that owner ends."""
    with _accounts(config_path, data_dir, log_level) as accounts:
        accounts.set_password(name, _read_password(password_stdin))
    click.echo(f"password of {name} changed; its sessions have ended")


@main.command()
@common_options
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8080).")
def serve(
    config_path: Path | None,
    data_dir: Path | None,
    log_level: str | None,
    host: str | None,
    port: int | None,
) -> None:
    """Serve the web gallery with waitress."""
    from webapp.server import make_server, run_server

    config = build_config(config_path, data_dir, log_level, **{"web.host": host, "web.port": port})
    try:
        server = make_server(_app(config), config)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {config.web.host}:{config.web.port}: {exc.strerror}"
        ) from None
    run_server(server)


@main.command()
@click.option("--port", type=int, default=8080, show_default=True, help="Port on 127.0.0.1.")
@click.option(
    "--interval", type=float, default=5.0, show_default=True, help="Seconds between photos."
)
def demo(port: int, interval: float) -> None:
    """Grabber on the bundled demo frames plus the gallery, with a fresh data dir."""
    import tempfile

    from webapp.server import DEMO_FRAMES, demo_account, make_server, run_server, start_grabber

    data_dir = Path(tempfile.mkdtemp(prefix="puccicam-demo-"))
    config = build_config(
        None,
        data_dir,
        None,
        **{
            "camera.source": f"replay:{DEMO_FRAMES}",
            "camera.warmup_delay": 1.0,
            # Check every replayed frame, so the log shows the corrupt ones rejected.
            "camera.warmup_frames": 0,
            "camera.max_attempts": 30,
            "capture.interval": interval,
            "web.port": port,
            "web.host": "127.0.0.1",
            "pet.bio": "A demo pet cam: the frames come from the test fixtures, "
            "corrupt ones included, so the log shows them being rejected.",
        },
    )
    app = _app(config)
    name, password = demo_account(app)
    try:
        server = make_server(app, config)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    thread, stop = start_grabber(config)
    click.echo(
        f"\npuccicam demo on http://127.0.0.1:{port}/  log in as {name} / {password}\n"
        f"data dir {data_dir}; Ctrl-C stops\n",
        err=True,
    )

    def stop_grabber() -> None:
        stop.set()
        thread.join(5)

    run_server(server, on_stop=stop_grabber)


if __name__ == "__main__":
    main()
