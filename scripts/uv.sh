#!/usr/bin/env bash
# Run uv, bootstrapping it into .tools/ when the machine has none (needs only python3 >= 3.11).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if command -v uv >/dev/null 2>&1; then
  exec uv "$@"
fi
if [ ! -x "$here/.tools/bin/uv" ]; then
  echo "uv not found: installing it into .tools/ from PyPI" >&2
  python3 -m venv "$here/.tools"
  "$here/.tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1"
fi
exec "$here/.tools/bin/uv" "$@"
