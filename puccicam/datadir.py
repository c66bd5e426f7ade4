"""Who may use a data dir: only the user who owns it.

A command run once as root against the service's data dir (``sudo puccicam grab --once``)
would leave ``photos/`` or the database owned by root, and the service, running as
``puccicam``, would fail on it from then on. So, as PostgreSQL does with its data
directory and GitLab with its ``sudo -u git`` commands, every command that writes state
refuses a data dir that belongs to another user, and one whose state files belong to
someone other than the data dir's owner, saying how to put it right.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from camera.errors import DataDirError

# What the commands write in a data dir, relative to it.
STATE = ("photos", "thumbs", "kept", "timelapse", "puccicam.sqlite3", "secret_key", "status.json")


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_owner(data_dir: Path, uid: int | None = None) -> None:
    """Refuse a data dir (or a state file in it) that ``uid`` (default: us) does not own.

    A data dir that does not exist yet is fine: it will be ours.
    :raises DataDirError: naming the owner, and the ``chown`` that repairs it.
    """
    uid = os.geteuid() if uid is None else uid
    try:
        owner = data_dir.stat().st_uid
    except OSError:
        return  # missing, or unreadable: reported by whatever opens it
    name = _user(owner)
    repair = f"sudo chown -R {name}: {data_dir}"
    if owner != uid:
        raise DataDirError(
            f"data dir {data_dir} belongs to {name}, but this command runs as {_user(uid)}: "
            f"run it as {name} (sudo -u {name} puccicam ...), or files it writes there "
            f"would lock {name}'s service out (if that has happened: {repair})"
        )
    strays = []
    for part in STATE:
        try:
            if (data_dir / part).stat().st_uid != owner:
                strays.append(part)
        except OSError:
            continue
    if strays:
        raise DataDirError(
            f"{', '.join(strays)} in {data_dir} belong(s) to another user than {name}, "
            f"who owns the data dir (a command was run as another user): fix with {repair}"
        )
