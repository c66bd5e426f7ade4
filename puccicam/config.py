"""One typed configuration: defaults, then a TOML file, then ``PUCCICAM_*`` variables.

Every key lives in a section (``[camera]``, ``[capture]``, ``[motion]``, ``[storage]``,
``[web]``, ``[live]``, ``[pet]``, ``[timelapse]``, ``[notify]``, ``[api]``, ``[metrics]``)
except the top-level ``data_dir`` and ``log_level``; the capture pipeline's sections are
defined in ``camera.settings``, the web's here. The environment variable for a key is its
dotted name in capitals with ``_`` for the dot: ``capture.interval`` is
``PUCCICAM_CAPTURE_INTERVAL``, ``data_dir`` is ``PUCCICAM_DATA_DIR``. Command-line
options are applied last. A bad value stops start-up with a message naming the key. A
list (``notify.urls``) is a TOML array, or in the environment its items separated by
spaces or commas (as Apprise reads several URLs).
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import stat
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from camera.settings import (
    CameraConfig,
    CaptureConfig,
    LiveConfig,
    MotionConfig,
    NotifyConfig,
    StorageConfig,
    TimelapseConfig,
)
from camera.settings import setting as _key

log = logging.getLogger(__name__)

ENV_PREFIX = "PUCCICAM_"
CONFIG_ENV = "PUCCICAM_CONFIG"
# A key whose name holds one of these is a secret (web.secret_key): never echoed; so is
# one whose setting says ``secret=True`` (notify.urls: Apprise URLs carry tokens).
SECRET_WORDS = ("secret", "password", "token")
# The type names in "expected ..." messages: an operator reads "a number", not "a float".
_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", Path: "a path"}
# Unknown PUCCICAM_* variables already warned about: once per process, not per load.
_warned: set[str] = set()


class ConfigError(Exception):
    """A configuration value is missing, unknown or out of range; the message names it."""


def _default_data_dir() -> Path:
    """``$XDG_DATA_HOME/puccicam``: a per-user place that is never inside the checkout."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "puccicam"


@dataclass(frozen=True)
class WebConfig:
    """The web gallery and the waitress server in front of it."""

    host: str = _key("127.0.0.1", "address to listen on; keep loopback behind a TLS proxy")
    port: int = _key(8080, "port to listen on", min=1, max=65535)
    threads: int = _key(4, "waitress worker threads", min=1, max=64)
    connection_limit: int = _key(
        100, "most simultaneous client connections; at it, idle ones make room for newcomers", min=1
    )
    channel_timeout: int = _key(30, "seconds an idle or slow connection is kept", min=1)
    max_body_kb: int = _key(
        16, "largest request body accepted, in KiB (larger: 413)", min=1, max=1024
    )
    trusted_proxy: str = _key(
        "", "address of a reverse proxy whose X-Forwarded-* headers are believed"
    )
    trusted_proxy_count: int = _key(1, "how many proxies in front append to X-Forwarded-For", min=1)
    https: bool = _key(False, "served over HTTPS: Secure cookies and HSTS")
    secret_key: str = _key(
        "",
        "session signing key, at least 32 bytes; empty: generated into `data_dir/secret_key` "
        "(mode 0600) on first run",
        min_bytes=32,
    )
    remember_days: int = _key(
        30,
        "days a login lasts at most (at most 30): 'remember me' cookies and sessions expire then",
        min=1,
        max=30,
    )
    bcrypt_rounds: int = _key(12, "bcrypt cost for new passwords", min=4, max=16)
    login_limit_ip: str = _key(
        "10 per minute;50 per hour", "failed logins allowed per client address, then 429"
    )
    login_limit_user: str = _key(
        "20 per hour",
        "failed logins allowed per username from one address, then 429; past it from all "
        "addresses together, each attempt for that name waits (up to 3 s)",
    )
    thumb_width: int = _key(160, "thumbnail width in pixels", min=16, max=640)
    refresh_seconds: float = _key(10.0, "how often the gallery looks for a new photo", min=1)


@dataclass(frozen=True)
class ApiConfig:
    """The still-image API for other clients (Home Assistant): ``puccicam token`` makes
    its read-only tokens; with none made, it opens nothing."""

    limit: str = _key(
        "10 per minute;100 per hour",
        "refused API and /metrics tokens allowed per client address, then 429",
    )


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus metrics at ``/metrics``: off unless asked for."""

    enabled: bool = _key(
        False,
        "serve /metrics (Prometheus text format) to loopback clients not behind a proxy, "
        "and to tokens made with `puccicam token add NAME --metrics`",
    )


@dataclass(frozen=True)
class PetConfig:
    """What the public home page says about the pet."""

    name: str = _key("Pucci", "the pet's name")
    bio: str = _key("", "a short paragraph about the pet (plain text)")
    birth_year: int = _key(0, "year of birth, for the age shown (0 hides it)", min=0, max=2100)
    photo: str = _key(
        "",
        "a public portrait (JPEG file; a relative path starts at the config file's directory); "
        "empty: the bundled one. Never a camera photo",
    )
    contact_email: str = _key("", "e-mail address shown on the home page")
    contact_url: str = _key("", "a link shown on the home page (Instagram, a blog...)")


@dataclass(frozen=True)
class Config:
    """The whole configuration; every piece of state lives under ``data_dir``."""

    data_dir: Path = _key(
        MISSING, "directory holding photos, thumbnails, status, accounts and the secret key"
    )
    log_level: str = _key(
        "INFO", "DEBUG, INFO, WARNING or ERROR", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    camera: CameraConfig = field(default_factory=CameraConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    web: WebConfig = field(default_factory=WebConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    pet: PetConfig = field(default_factory=PetConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    timelapse: TimelapseConfig = field(default_factory=TimelapseConfig)

    @property
    def photos_dir(self) -> Path:
        return self.data_dir / "photos"

    @property
    def status_path(self) -> Path:
        return self.data_dir / "status.json"

    @property
    def thumbs_dir(self) -> Path:
        return self.data_dir / "thumbs"

    @property
    def kept_dir(self) -> Path:
        return self.data_dir / "kept"

    @property
    def timelapse_dir(self) -> Path:
        return self.data_dir / "timelapse"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "puccicam.sqlite3"

    @property
    def live_socket(self) -> Path:
        """The grabber's live-view socket (``live.socket``, else a default)."""
        from camera.live import socket_path

        return socket_path(self.live.socket, self.data_dir)


SECTIONS: dict[str, type] = {
    "camera": CameraConfig,
    "capture": CaptureConfig,
    "motion": MotionConfig,
    "storage": StorageConfig,
    "web": WebConfig,
    "live": LiveConfig,
    "pet": PetConfig,
    "api": ApiConfig,
    "metrics": MetricsConfig,
    "notify": NotifyConfig,
    "timelapse": TimelapseConfig,
}
TOP_LEVEL = ("data_dir", "log_level")
RATE_LIMIT_KEYS = ("web.login_limit_ip", "web.login_limit_user", "api.limit")


def all_keys() -> list[tuple[str, Any, str]]:
    """Every dotted key with its default and help text, for docs and ``--help``."""
    keys = [
        (
            f.name,
            "$XDG_DATA_HOME/puccicam" if f.default is MISSING else f.default,
            f.metadata["help"],
        )
        for f in fields(Config)
        if f.name in TOP_LEVEL
    ]
    for section, cls in SECTIONS.items():
        keys += [(f"{section}.{f.name}", f.default, f.metadata["help"]) for f in fields(cls)]
    return keys


def example_toml() -> str:
    """A TOML file with every key commented out at its default, each with its meaning."""

    def literal(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(value, tuple):
            return "[" + ", ".join(literal(item) for item in value) + "]"
        return str(value)

    lines = ["# puccicam configuration: every key at its default. Uncomment to change.", ""]
    section = ""
    for key, default, help_text in all_keys():
        name_section, _, name = key.rpartition(".")
        if name_section != section:
            section = name_section
            lines += ["", f"[{section}]"]
        lines.append(f"# {help_text} ({env_name(key)})")
        shown = default
        if key == "data_dir":  # the built-in default depends on the user; say where it goes
            lines.append(f"# default: {default}; a system install uses /var/lib/puccicam")
            shown = "/var/lib/puccicam"
        lines.append(f"# {name} = {literal(shown)}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The key table of README.md and the operator guide, generated so it cannot drift
    (``puccicam config --markdown``; ``scripts/docs`` puts it into both files)."""

    def shown(value: Any) -> str:
        if value in ("", ()):
            return "(empty)"
        if isinstance(value, tuple):
            return "`" + ", ".join(value) + "`"
        if isinstance(value, bool):
            return "`true`" if value else "`false`"
        if isinstance(value, float):
            return f"`{value:g}`"
        return f"`{value}`"

    rows = ["| key | environment variable | default | meaning |", "|---|---|---|---|"]
    for key, default, help_text in all_keys():
        meaning = help_text.replace("|", "\\|")
        rows.append(f"| `{key}` | `{env_name(key)}` | {shown(default)} | {meaning} |")
    return "\n".join(rows) + "\n"


def env_name(key: str) -> str:
    """The environment variable that sets a dotted key."""
    return ENV_PREFIX + key.replace(".", "_").upper()


def _field_type(cls: type, name: str) -> type:
    hint = typing.get_type_hints(cls)[name]
    if isinstance(hint, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _coerce(key: str, kind: type, value: Any, origin: str) -> Any:
    """Turn a TOML value or an environment string into the field's type."""
    where = f"{key} (from {origin})"
    got = _shown(key, value)
    if typing.get_origin(kind) is tuple:
        return _coerce_list(where, got, value)
    if isinstance(value, str) and kind is not str and kind is not Path:
        text = value.strip()
        if kind is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{where}: expected true or false, got {got}")
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f"{where}: expected {_kind_name(kind)}, got {got}") from None
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {got}")
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is Path and isinstance(value, str | Path):
        if not str(value).strip():
            raise ConfigError(f"{where}: must not be empty")
        return Path(value).expanduser()
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where}: expected {_kind_name(kind)}, got {got}")
    return value


def _coerce_list(where: str, got: str, value: Any) -> tuple[str, ...]:
    """A list of strings: a TOML array, or a string of items separated by spaces or commas."""
    if isinstance(value, str):
        return tuple(item for item in re.split(r"[\s,]+", value) if item)
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    raise ConfigError(f"{where}: expected a list of strings, got {got}")


def is_secret(key: str) -> bool:
    """Whether a key holds a secret, whose value no message or log line may show."""
    if any(word in key.lower() for word in SECRET_WORDS):
        return True
    section, _, name = key.rpartition(".")
    cls = SECTIONS.get(section) if section else Config
    meta = next((f.metadata for f in fields(cls) if f.name == name), {}) if cls else {}
    return bool(meta.get("secret"))


def _shown(key: str, value: Any, *, literal: bool = True) -> str:
    """``value`` as an error message shows it: not at all for a secret."""
    if is_secret(key):
        return "a value not shown here (it is a secret)"
    return repr(value) if literal else str(value)


def _kind_name(kind: type) -> str:
    return _KIND_NAMES.get(kind, f"a {kind.__name__}")


def _check_limits(key: str, meta: Mapping[str, Any], value: Any, origin: str) -> None:
    where = f"{key} (from {origin})"
    got = _shown(key, value, literal=False)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number, got {got}")
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"{where}: must be at least {meta['min']}, got {got}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"{where}: must be at most {meta['max']}, got {got}")
    if "min_bytes" in meta and value and len(value.encode("utf-8")) < meta["min_bytes"]:
        # Never the value: it is a secret.
        raise ConfigError(
            f"{where}: must be at least {meta['min_bytes']} bytes, got "
            f"{len(value.encode('utf-8'))}; leave it empty to have one generated, or make "
            "one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    if "choices" in meta and isinstance(value, tuple):
        wrong = [item for item in value if item not in meta["choices"]]
        if wrong:
            raise ConfigError(f"{where}: {wrong[0]!r} is not one of {', '.join(meta['choices'])}")
    elif "choices" in meta and value not in meta["choices"]:
        raise ConfigError(
            f"{where}: must be one of {', '.join(meta['choices'])}, got {_shown(key, value)}"
        )
    if meta.get("clock_time") and value and not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", value):
        raise ConfigError(f"{where}: expected a time of day as HH:MM (e.g. 20:00), got {got}")


def _suggestion(key: str) -> str:
    """ "; did you mean ..." for a mistyped or misplaced dotted key, or ""."""
    known = [k for k, _, _ in all_keys()]
    name = key.rpartition(".")[2]
    # The right name in the wrong place (``interval`` at the top, not under [capture]).
    placed = [k for k in known if k.rpartition(".")[2] == name and k != key]
    close = placed or difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close:  # a typo in the name and the section: compare the names alone
        names = {k.rpartition(".")[2]: k for k in known}
        close = [names[n] for n in difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)]
    if not close:
        return "; see 'puccicam config --example' for every key"
    section, _, short = close[0].rpartition(".")
    where = f" under [{section}]" if section else " at the top of the file, before any section"
    return f"; did you mean {short!r}{where} ({close[0]})?"


def _lookup(key: str, origin: str = "command line") -> tuple[type, str, Mapping[str, Any]]:
    """(dataclass, field name, metadata) for a dotted key, or ConfigError."""
    section, _, name = key.rpartition(".")
    cls = SECTIONS.get(section) if section else Config
    if (
        cls is None
        or name not in {f.name for f in fields(cls)}
        or (not section and name not in TOP_LEVEL)
    ):
        where = f"[{section}]" if section else "the top level"
        raise ConfigError(
            f"unknown configuration key {name!r} in {where} of {origin}{_suggestion(key)}"
        )
    meta = next(f.metadata for f in fields(cls) if f.name == name)
    return cls, name, meta


def _warn_unknown_variable(var: str, env_keys: Mapping[str, str]) -> None:
    """Log an unknown ``PUCCICAM_*`` variable once; it is ignored, not fatal, since a
    typo in a drop-in must not stop a pet camera (and other tools share the prefix)."""
    if var in _warned:
        return
    _warned.add(var)
    close = _closest_variable(var, env_keys)
    hint = f"; did you mean {close} ({env_keys[close]})?" if close else ""
    log.warning("ignoring unknown environment variable %s%s", var, hint)


def _closest_variable(var: str, env_keys: Mapping[str, str]) -> str | None:
    """The known variable ``var`` was probably meant to be, or None.

    Compared without the shared ``PUCCICAM_`` prefix, which would make any name look
    close; a key's own name without its section counts too (``PUCCICAM_PORT``)."""
    typed = var.removeprefix(ENV_PREFIX)
    by_suffix = {name.removeprefix(ENV_PREFIX): name for name in env_keys}
    placed = [n for n, key in env_keys.items() if key.rpartition(".")[2].upper() == typed]
    if placed:
        return placed[0]
    close = difflib.get_close_matches(typed, list(by_suffix), n=1, cutoff=0.8)
    return by_suffix[close[0]] if close else None


def _check_rate_limits(values: Mapping[str, tuple[Any, str]]) -> None:
    """Login limits must parse as Flask-Limiter reads them: a typo would disable them."""
    for key in RATE_LIMIT_KEYS:
        if key not in values:
            continue
        from limits import parse_many  # only when set: ``grab`` need not import it

        value, origin = values[key]
        try:
            parse_many(value)
        except ValueError:
            raise ConfigError(
                f"{key} (from {origin}): {value!r} is not a rate limit; write e.g. "
                "'10 per minute;50 per hour' (a count, 'per', a unit: second, minute, "
                "hour, day; several separated by ';')"
            ) from None


def _check_notify_urls(values: Mapping[str, tuple[Any, str]], config_file: Path | None) -> None:
    """Every ``notify.urls`` entry must be one Apprise can send to: a typo would silence the
    alert that the camera is down. Neither a URL nor its parts appear in a message."""
    if not values.get("notify.urls", ((), ""))[0]:
        return
    from camera.sender import check_url  # only when set: Apprise takes 0.3 s to import

    urls, origin = values["notify.urls"]
    for number, url in enumerate(urls, start=1):
        problem = check_url(url)
        if problem:
            raise ConfigError(
                f"notify.urls (from {origin}): URL {number} of {len(urls)} {problem}; "
                "see https://github.com/caronc/apprise/wiki for the forms each service takes"
            )
    if config_file is not None and origin == str(config_file):
        _warn_if_readable(config_file)


def _warn_if_readable(path: Path) -> None:
    """Warn when a config file holding notification URLs can be read by others: by anyone,
    or by a group other than the one puccicam runs as (install.sh's 0640 root:puccicam)."""
    try:
        info = path.stat()
    except OSError:
        return
    others = info.st_mode & stat.S_IROTH
    group = info.st_mode & stat.S_IRGRP and info.st_gid != os.getegid()
    if others or group:
        log.warning(
            "config file %s holds notify.urls (secrets) but is readable by %s (mode %04o); "
            "make it private: chmod 600 %s (or 640 with the group puccicam runs as)",
            path,
            "everyone" if others else "its group",
            stat.S_IMODE(info.st_mode),
            path,
        )


def _resolve_pet_photo(values: dict[str, tuple[Any, str]], config_file: Path | None) -> None:
    """An absolute ``pet.photo`` path that exists: a relative one is taken from the config
    file's directory (from the environment or command line, the current one)."""
    if not values.get("pet.photo", ("", ""))[0]:
        return
    value, origin = values["pet.photo"]
    base = config_file.parent if config_file is not None and origin == str(config_file) else None
    path = Path(value).expanduser()
    path = ((base or Path.cwd()) / path).resolve()
    if not path.is_file():
        raise ConfigError(
            f"pet.photo (from {origin}): no file at {path}; give a JPEG file's path "
            "(relative paths start at the config file's directory) or leave it empty"
        )
    values["pet.photo"] = (str(path), origin)


def _flatten_toml(doc: Mapping[str, Any], path: Path) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in doc.items():
        if isinstance(value, dict):
            if name not in SECTIONS:
                close = difflib.get_close_matches(name, list(SECTIONS), n=1, cutoff=0.5)
                hint = f"did you mean [{close[0]}]?" if close else f"known: {', '.join(SECTIONS)}"
                raise ConfigError(f"unknown section [{name}] in {path}; {hint}")
            flat.update({f"{name}.{k}": v for k, v in value.items()})
        else:
            flat[name] = value
    return flat


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return _flatten_toml(tomllib.load(fh), path)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None


def load_config(
    path: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the configuration from defaults, a TOML file, the environment and overrides.

    ``path`` falls back to ``$PUCCICAM_CONFIG``; ``overrides`` are dotted keys from the
    command line, where ``None`` means "not given".
    :raises ConfigError: naming the first bad key and where its value came from.
    """
    env = os.environ if env is None else env
    layers: list[tuple[str, dict[str, Any]]] = []
    path = path or env.get(CONFIG_ENV) or None
    if path is not None:
        path = Path(path).expanduser()
        layers.append((str(path), _read_toml(path)))
    env_keys = {env_name(k): k for k, _, _ in all_keys()}
    from_env = {}
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or var == CONFIG_ENV:
            continue
        if var not in env_keys:
            _warn_unknown_variable(var, env_keys)
            continue
        from_env[env_keys[var]] = value
    layers.append(("environment", from_env))
    layers.append(("command line", {k: v for k, v in (overrides or {}).items() if v is not None}))

    values: dict[str, tuple[Any, str]] = {}
    for origin, layer in layers:
        for key, raw in layer.items():
            origin_name = env_name(key) if origin == "environment" else origin
            cls, name, meta = _lookup(key, origin_name)
            value = _coerce(key, _field_type(cls, name), raw, origin_name)
            if "choices" in meta and isinstance(value, str):  # ``debug`` as --log-level takes it
                value = next((c for c in meta["choices"] if c.lower() == value.lower()), value)
            _check_limits(key, meta, value, origin_name)
            values[key] = (value, origin_name)
    _check_rate_limits(values)
    _check_notify_urls(values, path)
    _resolve_pet_photo(values, path)

    top = {k: v for k, (v, _) in values.items() if "." not in k}
    top.setdefault("data_dir", _default_data_dir())
    sections = {
        section: replace(
            cls(),
            **{
                k.split(".", 1)[1]: v for k, (v, _) in values.items() if k.startswith(section + ".")
            },
        )
        for section, cls in SECTIONS.items()
    }
    config = Config(**top, **sections)
    log.debug(
        "configuration loaded from %s", ", ".join(o for o, layer in layers if layer) or "defaults"
    )
    return config
