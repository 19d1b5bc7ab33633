#!/usr/bin/env bash
# `make audit`: every package uv.lock pins (all extras, all groups) against PyPI's vulnerability
# data (pip-audit's `pypi` service: https://pypi.org/pypi/<name>/<version>/json, the OSV records
# PyPI publishes per release). The lock is exported as hashed requirements, so pip-audit neither
# resolves nor installs anything (--disable-pip --no-deps).
#
# Exit codes: 0 no known vulnerability; 1 vulnerabilities found (or pip-audit failed);
# 3 the vulnerability service did not answer, so nothing was checked (said why, never a pass),
# unless CITYPIPE_AUDIT_UNREACHABLE=warn, which prints the same and exits 0 (.ci/run, see there).
# Ignored vulnerabilities: deploy/audit-ignore.txt, one ID per line with its reason beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=./scripts/uv.sh
ignore_file=deploy/audit-ignore.txt

# pip-audit's `pypi` service skips a release whose JSON it cannot fetch (404) and, with --strict,
# then stops at the first one with a message about that package only. Ask once first, for a
# release that certainly exists (pip-audit's own pin), so an unreachable service is said plainly.
probe_version="$("$uv" run --frozen python -c 'import importlib.metadata as m; print(m.version("pip-audit"))')"
probe_url="https://pypi.org/pypi/pip-audit/${probe_version}/json"
if ! status="$("$uv" run --frozen python - "$probe_url" <<'PY'
import sys
import urllib.error
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=15) as response:
        print(response.status)
except urllib.error.HTTPError as error:
    print(error.code)
    sys.exit(1)
except OSError as error:
    print(f"unreachable ({error})")
    sys.exit(1)
PY
)"; then
  echo "make audit: NOT RUN. PyPI's vulnerability service does not answer from this machine:" >&2
  echo "  GET $probe_url -> $status" >&2
  echo "  (this network reaches the package index but not the per-release JSON API pip-audit" >&2
  echo "  reads, and not api.osv.dev). Nothing was checked." >&2
  if [ "${CITYPIPE_AUDIT_UNREACHABLE:-fail}" = warn ]; then
    echo "make audit: CITYPIPE_AUDIT_UNREACHABLE=warn, so this is not a failure." >&2
    exit 0
  fi
  exit 3
fi

requirements="$(mktemp --suffix=.txt)"
trap 'rm -f "$requirements"' EXIT
"$uv" export --frozen --format requirements-txt --no-emit-project --all-extras --all-groups \
  --quiet --output-file "$requirements"

ignores=()
if [ -f "$ignore_file" ]; then
  # Only the first word of a line is an ID; the rest of the line is its reason (required).
  while read -r id reason; do
    case "$id" in '' | '#'*) continue ;; esac
    if [ -z "$reason" ]; then
      echo "make audit: $ignore_file: $id has no reason beside it" >&2
      exit 1
    fi
    ignores+=(--ignore-vuln "$id")
  done <"$ignore_file"
fi

count="$(grep -c '^[A-Za-z0-9]' "$requirements")"
echo "make audit: $count pinned packages from uv.lock against PyPI's vulnerability data"
# --strict: a package the service cannot answer for fails the audit instead of being skipped.
"$uv" run --frozen pip-audit --disable-pip --no-deps --strict --progress-spinner off \
  --vulnerability-service pypi --requirement "$requirements" "${ignores[@]}"
