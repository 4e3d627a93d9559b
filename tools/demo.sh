#!/usr/bin/env bash
# Install the agent into .venv and run the demo: emulated Modbus and serial
# devices, a generated street video, the agent with its embedded MQTT broker,
# and a live view of what the hub receives. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 - <<'PY' || { echo "Python 3.11 or newer is needed (found $(python3 --version 2>&1))." >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "==> installing python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  else
    echo "Python's venv module is missing. Install it with:  sudo apt-get install python3-venv" >&2
    exit 1
  fi
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
echo "==> installing the agent with vision support into .venv (first run takes a minute)"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[vision]"
exec .venv/bin/edge-agent demo "$@"
