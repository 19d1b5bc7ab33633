"""Print the first line of a secret file without its newline (Airflow's *_CMD options).

Airflow uses a *_CMD's output as it is, newline included; `cat` would hand the fernet key and
the JWT secret over with the file's trailing newline.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: read_secret.py PATH")
    lines = Path(sys.argv[1]).read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].strip():
        sys.exit(f"{sys.argv[1]}: empty secret (there is no default)")
    sys.stdout.write(lines[0].strip())
