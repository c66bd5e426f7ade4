"""The ``puccicam`` command: thin subcommands that build the config and call in.

Every subcommand gets ``--config``, ``--data-dir`` and ``--log-level`` (also accepted
before the subcommand) from one decorator, :func:`with_config`, which builds the
:class:`Config` and passes it in. Domain errors are raised as their own types and become
one-line messages in one place, :meth:`Group.invoke`, so every failure reaches the
operator as a sentence saying what happened and what to do.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
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


def _domain_message(exc: Exception) -> str | None:
    """The one-line message for a domain error, or None for anything else."""
    if isinstance(exc, ConfigError):
        return f"configuration: {exc}"
    if isinstance(exc, CameraError):  # camera, frames, storage, the data dir
        return str(exc)
    # The web side's errors are imported only once one is being reported: ``grab`` and
    # ``check`` never load Flask.
    if "webapp" in sys.modules:
        from webapp.accounts import AccountError
        from webapp.server import ListenError

        if isinstance(exc, AccountError | ListenError):
            return str(exc)
    return None


class Group(click.Group):
    """A click group that turns domain errors into ``click.ClickException``, and under
    systemd reports the error that stops the process through logging."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """As click's, except under systemd (``JOURNAL_STREAM`` set): there the line that
        says why the process stopped goes through logging at ERROR, so it carries the
        ``<3>`` priority and ``journalctl -p warning`` shows it; exit codes are click's."""
        if not os.environ.get("JOURNAL_STREAM") or kwargs.get("standalone_mode") is False:
            return super().main(*args, **kwargs)
        try:
            code = super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.ClickException as exc:
            message = exc.format_message()
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                message = f"{message} (see '{exc.ctx.command_path} --help')"
            _fatal(message, exc.exit_code)
        except click.Abort:
            _fatal("aborted", 1)
        except Exception as exc:
            _fatal(f"stopped by an unexpected error: {exc!r}", 1, exc_info=True)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            message = _domain_message(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None


def _fatal(message: str, code: int, *, exc_info: bool = False) -> None:
    """Log the reason the process stops, once, at ERROR, and exit with ``code``."""
    if not logging.getLogger().handlers:  # the failure came before the config was read
        setup_logging("INFO")
    log.error("%s", message, exc_info=exc_info)
    sys.exit(code)


def _common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--config, --data-dir and --log-level, on the group and on every subcommand."""
    for option in reversed(
        [
            click.option(
                "--config",
                "config_path",
                type=click.Path(dir_okay=False, path_type=Path),
                help="TOML config file (default: $PUCCICAM_CONFIG, else built-in defaults).",
            ),
            click.option(
                "--data-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="Directory holding all state (default: $PUCCICAM_DATA_DIR).",
            ),
            click.option(
                "--log-level",
                type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
                help="How much to log (default: $PUCCICAM_LOG_LEVEL or INFO).",
            ),
        ]
    ):
        command = option(command)
    return command


def with_config(
    preset: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None,
    *,
    writes_state: bool = True,
    **option_keys: str,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a subcommand the common options and call it with the built ``config``.

    ``option_keys`` maps the subcommand's own options to dotted keys (``source=
    "camera.source"``); ``preset(params, common)`` returns keys a subcommand sets itself
    (the demo's camera, a quieter log level), beneath the options the operator typed; it
    may pop the options it consumed from ``params``, or add values for the command. A bad
    value raises ConfigError naming the key, which the group reports. A command that
    ``writes_state`` refuses a data dir another user owns (:func:`check_owner`).
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @_common_options
        @functools.wraps(command)
        def wrapper(
            config_path: Path | None, data_dir: Path | None, log_level: str | None, **params: Any
        ) -> Any:
            group = click.get_current_context().find_root().params
            common = {
                "data_dir": data_dir or group.get("data_dir"),
                "log_level": (log_level or group.get("log_level") or "").upper() or None,
            }
            overrides = dict(preset(params, common) if preset else {})
            overrides.update({key: params.pop(name) for name, key in option_keys.items()})
            overrides.update({k: v for k, v in common.items() if v is not None})
            # Loading may warn (an unknown PUCCICAM_* variable): in the final format.
            setup_logging("WARNING")
            config = load_config(config_path or group.get("config_path"), overrides=overrides)
            setup_logging(config.log_level)
            if writes_state:
                from puccicam.datadir import check_owner

                check_owner(config.data_dir)
            return command(config, **params)

        return wrapper

    return decorate


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "never"
    moment = datetime.fromtimestamp(stamp, UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({_from_now(stamp)})"


def _from_now(stamp: float) -> str:
    ahead = stamp - time.time()
    return f"in {ahead:.0f} s" if ahead >= 0 else f"{-ahead:.0f} s ago"


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="puccicam")
@_common_options
def main(config_path: Path | None, data_dir: Path | None, log_level: str | None) -> None:
    """puccicam: a pet camera with a private web gallery."""


@main.command()
@with_config(
    source="camera.source",
    interval="capture.interval",
    overlay="capture.overlay",
    motion="capture.motion",
)
@click.option("--source", help="Camera: /dev/videoN, a by-id path, a file, a URL or replay:DIR.")
@click.option("--interval", type=float, help="Seconds between photos (at least 0.2).")
@click.option("--once", is_flag=True, help="Take one photo and exit (non-zero on failure).")
@click.option("--overlay/--no-overlay", default=None, help="Draw the timestamp banner or not.")
@click.option(
    "--motion/--no-motion", default=None, help="Also save a photo when something moves, or not."
)
@click.option(
    "--force", is_flag=True, help="With --once: even while a grabber runs with this data dir."
)
def grab(config: Config, once: bool, force: bool) -> None:
    """Take a photo every interval (or --once) and keep the last 24 hours."""
    from camera.source import redact
    from camera.status import live_grabber, read_status
    from puccicam.wiring import make_grabber

    running = live_grabber(read_status(config.status_path)) if once and not force else None
    if running is not None:
        raise click.ClickException(
            f"a grabber (pid {running}) is running with data dir {config.data_dir}: it holds "
            "the camera and writes the status file. Stop it first (sudo systemctl stop "
            "puccicam-grabber), or pass --force"
        )

    cam, cap = config.camera, config.capture
    log.info(
        "puccicam %s: source %s, %dx%d q%d every %g s, keep %g h, data dir %s",
        __version__,
        redact(cam.source),
        cap.width,
        cap.height,
        cap.jpeg_quality,
        cap.interval,
        config.storage.retention_hours,
        config.data_dir,
    )
    grabber = make_grabber(config, alerts=not once)
    if once:
        photo = grabber.run_once()
        click.echo(grabber.store.path(photo.name))
        return

    def request_stop(signum: int, _frame: object) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        # Not in this handler: the main thread may hold the Event's lock right now.
        threading.Thread(target=grabber.request_stop, name="stop").start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    grabber.run()


@main.command("config")
@with_config(writes_state=False)
@click.option("--example", is_flag=True, help="Print every key, commented, at its default.")
@click.option("--markdown", is_flag=True, help="Print the key table of the README and guide.")
def show_config(config: Config, example: bool, markdown: bool) -> None:
    """Check the configuration (exit 1 naming a bad key), or print an example file."""
    from puccicam.config import example_toml, markdown_table

    if example:
        click.echo(example_toml(), nl=False)
        return
    if markdown:
        click.echo(markdown_table(), nl=False)
        return
    click.echo(f"configuration ok; data dir {config.data_dir}")


@main.command()
@with_config(writes_state=False)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(config: Config, files: tuple[Path, ...]) -> None:
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
@with_config()
def prune(config: Config) -> None:
    """Delete photos older than the retention window now (the grabber also does it)."""
    from puccicam.wiring import make_retention, make_store

    result = make_retention(config, make_store(config)).prune(time.time())
    click.echo(
        f"deleted {result.expired} photo(s) older than {config.storage.retention_hours:g} h "
        f"and {result.for_space} more to keep {config.storage.min_free_mb} MB free"
    )


@main.command()
@with_config(writes_state=False)
@click.option("--since", help="Only photos taken since: ISO 8601 (UTC if no zone) or 30m, 2h, 1d.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of lines.")
def photos(config: Config, since: str | None, as_json: bool) -> None:
    """List photos: name, capture time (UTC), kind, activity (0-100), kept; oldest first."""
    from puccicam.listing import BadTime, line, parse_since, photo_rows
    from puccicam.wiring import make_kept, make_store

    try:
        start = parse_since(since, time.time()) if since is not None else None
    except BadTime as exc:
        raise click.BadParameter(str(exc), param_hint="'--since'") from None
    rows = photo_rows(make_store(config), start, set(make_kept(config).names()))
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    for row in rows:
        click.echo(line(row))


@main.command()
@with_config(writes_state=False)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The WebM file to write (VP8; it must end in .webm).",
)
@click.option(
    "--hours",
    type=click.FloatRange(min=0, min_open=True, max=24 * 366),
    help="How many hours back from now (default: storage.retention_hours).",
)
def timelapse(config: Config, out: Path, hours: float | None) -> None:
    """Write a time-lapse of the photos still stored: one frame per photo."""
    from camera.timelapse import write_timelapse
    from puccicam.wiring import make_store

    if out.suffix.lower() != ".webm":
        raise click.BadParameter(
            "the time-lapse is a WebM video: name it FILE.webm", param_hint="--out"
        )
    if not out.parent.is_dir():
        raise click.BadParameter(f"no directory {out.parent}", param_hint="--out")
    hours = hours or config.storage.retention_hours
    now = time.time()
    frames = write_timelapse(
        make_store(config),
        out,
        now - hours * 3600,
        now,
        config.timelapse.fps,
        (config.capture.width, config.capture.height),
    )
    click.echo(
        f"wrote {out}: {frames} photo(s) of the last {hours:g} h "
        f"at {config.timelapse.fps:g} frames per second ({frames / config.timelapse.fps:.1f} s)"
    )


@main.command()
@with_config(writes_state=False)
@click.option("--json", "as_json", is_flag=True, help="Print the raw status file.")
def status(config: Config, as_json: bool) -> None:
    """Show what the grabber last did; exit 1 if it never ran with this data dir."""
    from dataclasses import asdict

    from camera.status import grabber_running, read_status

    current = read_status(config.status_path)
    if current is None:
        raise click.ClickException(
            f"no status in {config.data_dir}: the grabber has not run with this data dir"
        )
    if as_json:
        click.echo(json.dumps(asdict(current), indent=1))
        return
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(current.rejected.items())) or "none"
    running = grabber_running(current.pid)
    camera = current.camera
    if camera == "missing":
        camera = "lost" if current.camera_found else "not found"
    if running is False:
        grabber, camera = f"not running (last pid {current.pid})", f"{camera} (when it stopped)"
        upcoming = ("next capture", "none: the grabber is not running")
    elif current.next_capture is None:
        grabber, upcoming = f"running (pid {current.pid})", ("next capture", "not scheduled")
    elif current.camera == "missing":
        grabber = f"running (pid {current.pid})"
        upcoming = ("next attempt", f"{_from_now(current.next_capture)} (camera {camera})")
    else:
        grabber = f"running (pid {current.pid})"
        upcoming = ("next capture", _when(current.next_capture))
    if running is None:  # /proc does not show it to us (another user, hidepid)
        grabber = f"unknown: pid {current.pid} is not visible to this user"
    for label, value in [
        ("grabber", grabber),
        ("source", current.source),
        ("camera", camera),
        (
            "mode",
            f"live view, {current.viewers} viewer(s)" if current.mode == "live" else "interval",
        ),
        ("interval", f"{current.interval:g} s"),
        ("last attempt", _when(current.last_attempt)),
        ("last success", _when(current.last_success)),
        ("last photo", current.last_photo or "none"),
        upcoming,
        ("saved", current.saved),
        ("failed", current.failed),
        ("rejected frames", rejected),
        ("last error", current.last_error or "none"),
    ]:
        click.echo(f"{label + ':':16} {value}")


@contextlib.contextmanager
def _accounts(config: Config):
    """The accounts of this data dir, inside the app's context; a database that cannot be
    used (not SQLite, read-only, locked) is a one-line DatabaseUnusable."""
    from webapp import create_app, state
    from webapp.accounts import usable_database

    with create_app(config).app_context(), usable_database(config.database_path):
        yield state().accounts


def _has_accounts_db(config: Config) -> bool:
    """Whether this data dir has an accounts database; a missing data dir is an error,
    so a mistyped ``--data-dir`` is reported, not created."""
    if not config.data_dir.is_dir():
        raise click.ClickException(
            f"no data dir {config.data_dir} (nothing was created): check --data-dir, "
            "data_dir in the config file or $PUCCICAM_DATA_DIR"
        )
    return config.database_path.exists()


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
# Account commands are quiet unless asked: their output is the answer, not a log.
quiet = with_config(preset=lambda _params, _common: {"log_level": "WARNING"})


@user.command("add")
@quiet
@click.argument("name")
@click.option("--email", help="The owner's e-mail address.")
@password_stdin_option
def user_add(config: Config, name: str, email: str | None, password_stdin: bool) -> None:
    """Create an owner account (8 to 72 bytes of password)."""
    from webapp.accounts import check_new_account, check_password_policy

    # Everything that can be refused is, before the data dir, key and database exist.
    check_new_account(name, email)
    password = _read_password(password_stdin)
    check_password_policy(password)
    with _accounts(config) as accounts:
        accounts.add(name, password, email)
    click.echo(f"account {name} created")


@user.command("list")
@quiet
def user_list(config: Config) -> None:
    """List the owner accounts."""
    users = []
    if _has_accounts_db(config):
        with _accounts(config) as accounts:
            users = accounts.all()
            for account in users:
                click.echo(
                    f"{account.username}\t{account.email or '-'}\t{account.created_at:%Y-%m-%d}"
                )
    if not users:
        click.echo("no accounts yet: create one with 'puccicam user add NAME'")


def _require_account(config: Config, name: str) -> None:
    from webapp.accounts import AccountError

    if _has_accounts_db(config):
        with _accounts(config) as accounts:
            if accounts.find(name) is not None:
                return
    raise AccountError(f"there is no account named {name!r}")


@user.command("remove")
@quiet
@click.argument("name")
def user_remove(config: Config, name: str) -> None:
    """Delete an owner account (its sessions end at once)."""
    _require_account(config, name)
    with _accounts(config) as accounts:
        stored = accounts.remove(name)
    click.echo(f"account {stored} removed")


@user.command("passwd")
@quiet
@click.argument("name")
@password_stdin_option
def user_passwd(config: Config, name: str, password_stdin: bool) -> None:
    """Change an owner's password; every session of that owner ends."""
    from webapp.accounts import check_password_policy

    _require_account(config, name)  # before asking for a password twice
    password = _read_password(password_stdin)
    check_password_policy(password)
    with _accounts(config) as accounts:
        stored = accounts.set_password(name, password)
    click.echo(f"password of {stored} changed; its sessions have ended")


@main.group()
def token() -> None:
    """Read-only tokens for other clients: the newest photo (Home Assistant), or metrics."""


@contextlib.contextmanager
def _tokens(config: Config):
    """The token functions of this data dir, inside the app's context."""
    from webapp import tokens

    with _accounts(config):
        yield tokens


@token.command("add")
@quiet
@click.argument("name")
@click.option(
    "--metrics",
    "for_metrics",
    is_flag=True,
    help="A token for /metrics (Prometheus) only, instead of the newest photo.",
)
def token_add(config: Config, name: str, for_metrics: bool) -> None:
    """Make a token and print it, once: it is stored only as a hash."""
    from webapp.tokens import check_name

    check_name(name)  # before the data dir, key and database exist
    with _tokens(config) as tokens:
        secret = tokens.add(name, "metrics" if for_metrics else "photo")
    opens = "/metrics" if for_metrics else "/api/latest.jpg and /api/latest.json"
    click.echo(f"token {name} created; it opens {opens} and nothing else.", err=True)
    click.echo("Copy it now, it is not shown again:", err=True)
    click.echo(secret)


@token.command("list")
@quiet
def token_list(config: Config) -> None:
    """List the tokens: name, what each opens, when made and last used (never the token)."""
    found = []
    if _has_accounts_db(config):
        with _tokens(config) as tokens:
            found = tokens.all_tokens()
    for info in found:
        used = "never used" if info.last_used is None else f"last used {_when(info.last_used)}"
        made = datetime.fromtimestamp(info.created, UTC)
        click.echo(f"{info.name}\t{info.scope}\tmade {made:%Y-%m-%d %H:%M} UTC\t{used}")
    if not found:
        click.echo("no tokens yet: make one with 'puccicam token add NAME'")


@token.command("revoke")
@quiet
@click.argument("name")
def token_revoke(config: Config, name: str) -> None:
    """Delete a token; the next request with it is refused, even while the server runs."""
    from webapp.tokens import TokenError

    if not _has_accounts_db(config):
        raise TokenError(f"there is no token named {name!r}: no tokens were ever made here")
    with _tokens(config) as tokens:
        stored = tokens.revoke(name)
    click.echo(f"token {stored} revoked")


@main.group("notify")
def notify_group() -> None:
    """Notifications through Apprise to the URLs of notify.urls."""


@notify_group.command("test")
@with_config(preset=lambda _params, _common: {"log_level": "WARNING"}, writes_state=False)
def notify_test(config: Config) -> None:
    """Send a test message to every notify.urls entry now and say how each went."""
    urls = config.notify.urls
    if not urls:
        raise click.ClickException(
            "no notification URLs configured: set notify.urls in the config file "
            "(an Apprise URL such as ntfys://ntfy.sh/TOPIC; see the operator guide)"
        )
    from camera.sender import send_test

    results = send_test(
        urls,
        "puccicam: test",
        f"A test message from puccicam on {os.uname().nodename}: notifications work.",
    )
    for shown, reason in results:
        click.echo(f"ok      {shown}" if reason is None else f"failed  {shown}: {reason}")
    failed = sum(reason is not None for _, reason in results)
    if failed:
        raise click.ClickException(f"{failed} of {len(results)} notification URLs failed")


@main.command()
@with_config(host="web.host", port="web.port")
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8080).")
def serve(config: Config) -> None:
    """Serve the web gallery with waitress."""
    from webapp import create_app
    from webapp.server import bind_then_build, run_server

    # Listen first: a port in use or a bad host leaves no data dir or secret key behind.
    run_server(bind_then_build(config, lambda: create_app(config)))


def _demo_preset(params: dict[str, Any], common: dict[str, Any]) -> dict[str, Any]:
    from puccicam.demo import demo_settings

    # A fresh data dir unless one is named: a demo never touches a real one, and the
    # fresh one is removed when the demo ends.
    # Only named here; ``demo`` creates it, so a refused config leaves nothing behind.
    fresh = Path(tempfile.gettempdir()) / f"puccicam-demo-{secrets.token_hex(6)}"
    params["fresh_dir"] = None if common["data_dir"] else fresh
    return {
        "data_dir": common["data_dir"] or params["fresh_dir"],
        **demo_settings(params.pop("interval")),
        "web.port": params.pop("port"),
        "web.host": params.pop("host"),
    }


@main.command()
@with_config(preset=_demo_preset)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 to try it from a phone on the same network.",
)
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on.")
@click.option(
    "--interval", type=float, default=5.0, show_default=True, help="Seconds between photos."
)
def demo(config: Config, fresh_dir: Path | None) -> None:
    """Grabber on the bundled demo frames plus the gallery, with a fresh data dir."""
    from puccicam.demo import demo_account, start_grabber, url_for_visitors
    from webapp import create_app
    from webapp.server import bind_then_build, run_server

    if fresh_dir:
        fresh_dir.mkdir(mode=0o700)  # not exist_ok: never a directory someone else made
    try:
        accounts: list[tuple[str, str]] = []

        def build():
            app = create_app(config)
            accounts.append(demo_account(app))
            return app

        server = bind_then_build(config, build)
        thread, stop = start_grabber(config)
        name, password = accounts[0]
        click.echo(
            f"\npuccicam demo on {url_for_visitors(config.web.host, config.web.port)}  "
            f"log in as {name} / {password}\ndata dir {config.data_dir}"
            f"{' (removed at exit)' if fresh_dir else ''}; Ctrl-C stops\n",
            err=True,
        )

        def stop_grabber() -> None:
            stop()
            thread.join(5)

        run_server(server, on_stop=stop_grabber)
    finally:
        if fresh_dir:
            shutil.rmtree(fresh_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
