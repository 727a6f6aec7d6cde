#!/bin/sh
# Install ztone, ztone-cli, ztone-idtool, ztone-relay and the test tools into a virtual environment
# (./.venv, or $ZTONE_VENV), then say how to start the daemon. A virtual environment
# because Debian's and Ubuntu's system python3 is "externally managed" (PEP 668): pip
# must not install into it. Nothing is started here.
#
#   ./install.sh            uses python3 from PATH (or $PYTHON); needs Python >= 3.11
set -eu
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=${ZTONE_VENV:-.venv}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "install.sh: $PYTHON not found: install Python 3.11 or newer (Debian/Ubuntu: apt-get install python3)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "install.sh: ztone needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -V 2>&1)" >&2
    exit 1
fi

# Debian and Ubuntu ship the venv module (with ensurepip) in a separate package.
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    package=$("$PYTHON" -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])')
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "install.sh: Python's venv module is missing: installing $package" >&2
        apt-get install -y -qq "$package" >/dev/null 2>&1 ||
            { apt-get update -qq && apt-get install -y -qq "$package"; } >/dev/null
    else
        echo "install.sh: Python's venv module is missing. Install it, then run ./install.sh again:" >&2
        echo "    sudo apt-get install $package" >&2
        exit 1
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -e '.[test]'

bin=$(cd "$VENV/bin" && pwd)
version=$("$bin/ztone" --version)
cat <<EOT
Installed $version in $bin
(ztone, ztone-cli, ztone-idtool and ztone-relay; ". $VENV/bin/activate" puts them on PATH).

Start the daemon, on ZeroTier's public planet unless its home has a planet file:
  as root, with virtual networks (TAP):  sudo $bin/ztone -d
        home /var/lib/zerotier-one; then: sudo $bin/ztone-cli info
  without root, no virtual networks:     $bin/ztone -U -d
        home \${XDG_DATA_HOME:-~/.local/share}/ztone; then: $bin/ztone-cli info
  as a systemd service: see README.md, "Run as a service".
Run the tests: $VENV/bin/python -m pytest
EOT
