#!/usr/bin/env bash
# make setup: the Debian packages and the .venv this repo needs, installed only when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suite and the demo use: the venv module; Mosquitto, which the hub runs as its own
# broker (own config, free loopback port), and its clients; Chromium, which Playwright drives for the
# dashboard test (from /usr/bin/chromium; never `playwright install`).
# If installing mosquitto starts the system service on port 1883, leave it: nothing here uses that port.
# The HQ desk reader: pcscd and vsmartcard's vpcd virtual reader (tests run a private pcscd, so a system
# pcscd can stay as it is); swig, gcc, libpcsclite-dev and python3-dev build pyscard, which PyPI ships as source.
DEB_PACKAGES=(python3-venv mosquitto mosquitto-clients chromium pcscd vsmartcard-vpcd libpcsclite-dev swig gcc python3-dev)

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# pyright (the firmware's type check against the MicroPython stubs) runs on Node.js; any node will do.
command -v node >/dev/null || missing+=(nodejs)
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
# Reinstall only when the project's dependencies changed.
stamp=.venv/.membercard-stamp
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv (log: .venv/setup.log)"
  if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e ".[dev]"; } >.venv/setup.log 2>&1; then
    tail -n 20 .venv/setup.log >&2
    echo "setup: pip failed (above, and in .venv/setup.log); check that PyPI is reachable, then run 'make setup' again" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
fi

# The ESP32 board's MicroPython stubs for `pyright -p tools/pyright-mpy.json` (typings/ is gitignored).
STUBS="micropython-esp32-stubs==1.29.0.post1"
if [ "$(cat typings/.membercard-stamp 2>/dev/null)" != "$STUBS" ]; then
  echo "setup: installing $STUBS into typings/"
  rm -rf typings
  if ! .venv/bin/python -m pip install --target typings "$STUBS" >>.venv/setup.log 2>&1; then
    tail -n 20 .venv/setup.log >&2
    echo "setup: pip failed installing $STUBS (see .venv/setup.log); check that PyPI is reachable, then run 'make setup' again" >&2
    exit 1
  fi
  echo "$STUBS" >typings/.membercard-stamp
fi
