#!/usr/bin/env bash
# Install (or upgrade, or remove) puccicam on a Raspberry Pi running Debian 12.
#
#   sudo deploy/install.sh                  install or upgrade, enable and start both units
#   sudo deploy/install.sh --uninstall      remove the program and units; keep photos,
#                                           accounts and the config
#   sudo deploy/install.sh --uninstall --purge   ...and delete those too
#   deploy/install.sh --root DIR            lay everything out under DIR instead of /,
#                                           without users or systemctl (for CI and review)
#
# Safe to run again: an existing config, secret key, photos and accounts are kept.
set -euo pipefail

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
}

root=/
uninstall=0
purge=0
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root=${2:?--root needs a directory}; shift 2 ;;
        --uninstall) uninstall=1; shift ;;
        --purge) purge=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
if [ "$purge" = 1 ] && [ "$uninstall" = 0 ]; then
    echo "install.sh: --purge goes with --uninstall" >&2
    exit 2
fi

root=${root%/}
live=1
[ -n "$root" ] && live=0 # a root prefix: no users, no chown, no systemctl
checkout=$(cd "$(dirname "$0")/.." && pwd)
app=$root/opt/puccicam
etc=$root/etc/puccicam
data=$root/var/lib/puccicam
units=$root/etc/systemd/system
user=puccicam
# The system's interpreter by default: the service user must be able to run it, which
# rules out one installed under a home directory (pyenv, conda).
default_python=python3
[ -x /usr/bin/python3 ] && default_python=/usr/bin/python3
python=${PYTHON:-$default_python}

say() { printf 'puccicam: %s\n' "$*"; }

# systemctl only where systemd runs (not in a container or chroot being prepared).
systemd_up() { [ "$live" = 1 ] && [ -d /run/systemd/system ]; }

if [ "$live" = 1 ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run it as root (sudo), or with --root DIR" >&2
    exit 1
fi

if [ "$uninstall" = 1 ]; then
    if systemd_up; then
        systemctl disable --now puccicam-grabber.service puccicam-web.service 2>/dev/null || true
    fi
    rm -f "$units/puccicam-grabber.service" "$units/puccicam-web.service"
    if systemd_up; then
        systemctl daemon-reload
    fi
    rm -rf "$app"
    if [ "$purge" = 1 ]; then
        rm -rf "$etc" "$data"
        if [ "$live" = 1 ] && getent passwd "$user" >/dev/null; then
            userdel "$user"
        fi
        say "removed, with photos, accounts and config"
    else
        say "removed; photos and accounts stay in $data, the config in $etc"
    fi
    exit 0
fi

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "install.sh: puccicam needs Python 3.11 or newer as $python (set PYTHON=)" >&2
    exit 1
fi

# 1. A system user that may use cameras and nothing else.
if [ "$live" = 1 ]; then
    if ! getent passwd "$user" >/dev/null; then
        useradd --system --user-group --home-dir /var/lib/puccicam --no-create-home \
            --shell /usr/sbin/nologin "$user"
        say "created system user $user"
    fi
    usermod --append --groups video "$user"
fi

# 2. The program: a copy of the checkout's tracked files and a virtual environment.
#    (The units cannot read a checkout under /home: ProtectHome=yes.)
mkdir -p "$app"
rm -rf "$app/src.new"
mkdir "$app/src.new"
if git -C "$checkout" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$checkout" ls-files -z | tar -C "$checkout" --null -T - -cf - | tar -xf - -C "$app/src.new"
else
    (cd "$checkout" && tar --exclude=./.venv --exclude=./.git -cf - .) | tar -xf - -C "$app/src.new"
fi
rm -rf "$app/src"
mv "$app/src.new" "$app/src"
[ -x "$app/venv/bin/python" ] || "$python" -m venv "$app/venv"
"$app/venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$app/venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$app/src"
say "installed $("$app/venv/bin/puccicam" --version) in $app"
if [ "$live" = 1 ] && ! runuser -u "$user" -- "$app/venv/bin/python" -c '' 2>/dev/null; then
    echo "install.sh: user $user cannot run $app/venv/bin/python; is $python under a" \
        "home directory? Run with PYTHON=/usr/bin/python3" >&2
    exit 1
fi

# 3. The config: every key, commented, at its default; behind Caddy on this Pi.
install -d -m 0755 "$etc"
if [ ! -e "$etc/puccicam.toml" ]; then
    "$app/venv/bin/puccicam" config --example |
        sed -e 's|^# data_dir = .*|data_dir = "/var/lib/puccicam"|' \
            -e 's|^# trusted_proxy = .*|trusted_proxy = "127.0.0.1"|' \
            -e 's|^# https = .*|https = true|' >"$etc/puccicam.toml"
    chmod 0640 "$etc/puccicam.toml"
    say "wrote $etc/puccicam.toml"
else
    say "kept the existing $etc/puccicam.toml"
fi

# 4. The data dir and the secret key, readable by the service user only.
install -d -m 0750 "$data"
if [ ! -e "$data/secret_key" ]; then
    (umask 077 && "$python" -c 'import secrets; print(secrets.token_urlsafe(48))' >"$data/secret_key")
    say "generated a secret key in $data/secret_key"
fi
chmod 0600 "$data/secret_key"
if [ "$live" = 1 ]; then
    chown root:"$user" "$etc/puccicam.toml"
    chown -R "$user:$user" "$data"
fi

# 5. The units.
install -d -m 0755 "$units"
install -m 0644 "$checkout/deploy/puccicam-grabber.service" "$checkout/deploy/puccicam-web.service" "$units/"
if systemd_up; then
    systemctl daemon-reload
    systemctl enable puccicam-grabber.service puccicam-web.service
    systemctl restart puccicam-grabber.service puccicam-web.service
    say "puccicam-grabber and puccicam-web are enabled and running"
elif [ "$live" = 1 ]; then
    say "systemd is not running here: enable puccicam-grabber and puccicam-web once it is"
fi

cat <<EOF

Next steps (docs/operator-guide.md has the details):
  1. Check the camera and the config:
       sudo -u $user $app/venv/bin/puccicam grab --once --config /etc/puccicam/puccicam.toml
  2. Create the first owner account:
       sudo -u $user $app/venv/bin/puccicam user add NAME --config /etc/puccicam/puccicam.toml
  3. Point a DNS name at this Pi (dynamic DNS if your address changes), forward ports
     80 and 443 to it, and put deploy/Caddyfile in front for HTTPS. The gallery is only
     served on 127.0.0.1:8080: never expose the login page over plain HTTP.
  4. Logs: journalctl -u puccicam-grabber -u puccicam-web -f
EOF
