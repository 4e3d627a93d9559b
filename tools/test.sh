#!/usr/bin/env bash
# The whole test suite from a fresh clone: creates .venv, installs what the
# tests need (Mosquitto and the disk-image tools from Debian packages when run
# as root), then runs lint and every test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need_debs=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_debs+=(mosquitto)
command -v sfdisk >/dev/null 2>&1 || [ -x /usr/sbin/sfdisk ] || need_debs+=(fdisk)
command -v mkfs.vfat >/dev/null 2>&1 || [ -x /usr/sbin/mkfs.vfat ] || need_debs+=(dosfstools)
command -v mcopy >/dev/null 2>&1 || need_debs+=(mtools)
[ -e /usr/share/zoneinfo/UTC ] || need_debs+=(tzdata)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_debs+=(python3-venv)
if [ ${#need_debs[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "==> installing Debian packages: ${need_debs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_debs[@]}" >/dev/null
  else
    echo "The tests need these Debian packages: ${need_debs[*]}" >&2
    echo "Install them with:  sudo apt-get install ${need_debs[*]}   (or run this script as root)" >&2
    exit 1
  fi
fi

python3 - <<'PY' || { echo "Python 3.11 or newer is needed (found $(python3 --version 2>&1))." >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
echo "==> installing the agent with its vision and test extras into .venv"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[vision,test]"

echo "==> lint (ruff)"
.venv/bin/ruff check agent drivers tools hil_tests tests bench edge_models
.venv/bin/ruff format --check agent drivers tools hil_tests tests bench edge_models

echo "==> tests"
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest -p no:cacheprovider --durations=15 "$@"
