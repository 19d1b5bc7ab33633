"""Container health checks of docker-compose.yml, standard library only (the image has no curl).

    python deploy/healthcheck.py http URL [--field NAME]     # 2xx, and JSON field NAME is true
    python deploy/healthcheck.py file PATH --max-age S [--field NAME]
                                                             # rewritten within S seconds, NAME true

Exit 0 healthy, 1 not (the reason on stderr, which `docker inspect` shows).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path


def check(args: argparse.Namespace) -> str | None:
    """None when healthy, else why not."""
    if args.kind == "http":
        try:
            with urllib.request.urlopen(args.target, timeout=args.timeout) as resp:
                body = resp.read()
        except OSError as exc:  # URLError, HTTPError (4xx/5xx), refused, timeout
            return f"{args.target}: {exc}"
    else:
        path = Path(args.target)
        try:
            age_s = time.time() - path.stat().st_mtime
            body = path.read_bytes()
        except OSError as exc:
            return f"{path}: {exc}"
        if args.max_age is not None and age_s > args.max_age:
            return f"{path} not rewritten for {age_s:.0f} s (limit {args.max_age:g} s)"
    if args.field:
        try:
            value = json.loads(body).get(args.field)
        except (ValueError, AttributeError) as exc:
            return f"{args.target}: not a JSON object ({exc})"
        if value is not True:
            return f"{args.target}: {args.field} is {value!r}"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=("http", "file"))
    p.add_argument("target", help="URL or file path")
    p.add_argument("--field", help="a JSON field that must be true")
    p.add_argument("--max-age", type=float, help="file: seconds since its last rewrite")
    p.add_argument("--timeout", type=float, default=5.0)
    problem = check(p.parse_args(argv))
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
