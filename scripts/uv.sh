#!/usr/bin/env bash
# Run uv, bootstrapping it into .tools/ when the machine has none (needs only python3 >= 3.11).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if command -v uv >/dev/null 2>&1; then
  exec uv "$@"
fi
tools="$here/.tools"
if [ ! -x "$tools/bin/uv" ]; then
  echo "uv not found: installing it into .tools/ from PyPI" >&2
  # A venv is the clean way; Debian's python3 lacks ensurepip without python3-venv, so fall
  # back to a plain pip --target install (uv is one static binary plus a tiny Python shim).
  if python3 -m venv "$tools" >/dev/null 2>&1 && [ -x "$tools/bin/pip" ]; then
    "$tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1"
  else
    rm -rf "$tools"
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
      --target "$tools/lib" "uv>=0.5,<1" 2>/dev/null ||
      python3 -m pip install --quiet --disable-pip-version-check --target "$tools/lib" "uv>=0.5,<1"
    mkdir -p "$tools/bin"
    ln -sf "$tools/lib/bin/uv" "$tools/bin/uv"
  fi
fi
exec "$tools/bin/uv" "$@"
