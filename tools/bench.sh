#!/usr/bin/env bash
# Run every benchmark in bench/ with the project's .venv (create it with
# ./tools/test.sh first). Each prints its figures; docs/benchmarks.md records them.
# Pass names to run a subset:  ./tools/bench.sh outbox modbus
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "No .venv: run ./tools/test.sh once first." >&2; exit 1; }
export PATH="$PWD/.venv/bin:$PATH"
status=0
for script in bench/bench_*.py; do
  name=$(basename "$script" .py); name=${name#bench_}
  if [ $# -gt 0 ] && [[ ! " $* " =~ " ${name%%_*} " ]] && [[ ! " $* " =~ " $name " ]]; then continue; fi
  echo "==> $script"
  .venv/bin/python "$script" || { echo "!! $script failed" >&2; status=1; }
done
exit $status
