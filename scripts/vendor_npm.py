#!/usr/bin/env python3
"""Vendor front-end files from an npm package, so the pages work offline (no CDN at run time).

    ./scripts/uv.sh run python scripts/vendor_npm.py echarts@6.0.0 dist/echarts.min.js
    ./scripts/uv.sh run python scripts/vendor_npm.py --check
    ./scripts/uv.sh run python scripts/vendor_npm.py --licenses

Fetches the package's tarball from the npm registry, checks it against the registry's
``dist.integrity`` (sha512), and copies the named files (globs allowed, relative to the package
root) with the package's licence files into ``serving/static/vendor/<name>@<version>/``, beside a
``SOURCE.json`` that records the tarball URL, its integrity, the licence and each file's sha256.
``--check`` verifies every vendored folder against its SOURCE.json without the network
(tests/unit/test_vendored_assets.py runs it). ``--licenses`` rewrites ``LICENSES.md`` there, the
listing of every vendored package with its licence, tarball and integrity (vendoring rewrites it
too; the unit test fails when it is out of date).
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
VENDOR_DIR = Path(__file__).resolve().parent.parent / "serving" / "static" / "vendor"
LICENCE_NAMES = ("license", "licence", "notice", "copying")
LISTING = "LICENSES.md"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return bytes(response.read())


def vendor(spec: str, patterns: list[str], dest_root: Path = VENDOR_DIR) -> Path:
    name, _, version = spec.rpartition("@")
    if not name or not version:
        raise SystemExit(f"give the package as name@version, not {spec!r}")
    meta = json.loads(_get(f"{REGISTRY}/{name.replace('/', '%2f')}/{version}"))
    tarball_url = meta["dist"]["tarball"]
    integrity = meta["dist"]["integrity"]
    algo, _, digest = integrity.partition("-")
    if algo != "sha512":
        raise SystemExit(f"{spec}: unexpected integrity algorithm {algo}")
    blob = _get(tarball_url)
    if base64.b64encode(hashlib.sha512(blob).digest()).decode() != digest:
        raise SystemExit(f"{spec}: tarball does not match the registry's integrity")
    dest = dest_root / f"{name}@{version}"
    dest.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        for member in members:
            # npm tarballs put everything under one top folder (usually package/).
            rel = member.name.split("/", 1)[1] if "/" in member.name else member.name
            top_licence = "/" not in rel and rel.lower().split(".")[0] in LICENCE_NAMES
            # package.json names the licence: kept for packages that ship no licence file
            # (vega, popper.js 1.x); SOURCE.json then says so (license_file).
            manifest = rel == "package.json"
            if not (top_licence or manifest) and not any(fnmatch.fnmatch(rel, p) for p in patterns):
                continue
            if rel.startswith("/") or ".." in Path(rel).parts:
                raise SystemExit(f"{spec}: unsafe path in tarball: {rel}")
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            files[rel] = hashlib.sha256(data).hexdigest()
    licence_files = [f for f in files if f.lower().split(".")[0] in LICENCE_NAMES]
    if licence_files:
        files.pop("package.json", None)
        (dest / "package.json").unlink(missing_ok=True)
    missing = [p for p in patterns if not any(fnmatch.fnmatch(f, p) for f in files)]
    if missing:
        raise SystemExit(f"{spec}: no file matches {missing}")
    source = {
        "package": name,
        "version": version,
        "tarball": tarball_url,
        "integrity": integrity,
        "license": meta.get("license"),
        "homepage": meta.get("homepage"),
        "files": dict(sorted(files.items())),
    }
    if not licence_files:
        source["license_file"] = "package.json"
    (dest / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    (dest_root / LISTING).write_text(licence_listing(dest_root), encoding="utf-8")
    return dest


def _licence_files(source: dict[str, object]) -> list[str]:
    files = source["files"]
    assert isinstance(files, dict)
    named = [f for f in files if Path(f).name.lower().split(".")[0] in LICENCE_NAMES]
    return named or [str(source["license_file"])]


def licence_listing(root: Path = VENDOR_DIR) -> str:
    """LICENSES.md: one row per vendored folder, from its SOURCE.json (deterministic)."""
    lines = [
        "# Licences of the vendored front-end packages",
        "",
        "Written by `scripts/vendor_npm.py --licenses` from each folder's SOURCE.json; do not edit.",
        "Licence: the package.json `license` field (SPDX). Licence files: copied from the package",
        "tarball into its folder (package.json where the tarball has no licence file).",
        "",
        "| package | version | licence | licence files | source tarball | integrity |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for source_file in sorted(root.rglob("SOURCE.json")):
        source = json.loads(source_file.read_text(encoding="utf-8"))
        folder = source_file.parent.relative_to(root).as_posix()
        files = ", ".join(f"[{f}]({folder}/{f})" for f in _licence_files(source))
        lines.append(
            f"| {source['package']} | {source['version']} | {source.get('license') or ''} "
            f"| {files} | {source['tarball']} | `{source['integrity']}` |"
        )
    return "\n".join(lines) + "\n"


def check(root: Path = VENDOR_DIR) -> list[str]:
    """Problems with the vendored folders (empty: all match their SOURCE.json)."""
    problems: list[str] = []
    for source_file in sorted(root.rglob("SOURCE.json")):
        folder = source_file.parent
        source = json.loads(source_file.read_text(encoding="utf-8"))
        named = source.get("license_file") in source["files"]
        if not named and not any(
            Path(f).name.lower().split(".")[0] in LICENCE_NAMES for f in source["files"]
        ):
            problems.append(f"{folder.name}: no licence file")
        if not source.get("license"):
            problems.append(f"{folder.name}: no licence named")
        for rel, sha in source["files"].items():
            path = folder / rel
            if not path.is_file():
                problems.append(f"{folder.name}: {rel} missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != sha:
                problems.append(f"{folder.name}: {rel} differs from the package")
        listed = {folder / rel for rel in source["files"]} | {source_file}
        for path in folder.rglob("*"):
            if path.is_file() and path not in listed:
                problems.append(f"{folder.name}: {path.relative_to(folder)} not from the package")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", nargs="?", help="package@version")
    parser.add_argument("files", nargs="*", help="files or globs inside the package")
    parser.add_argument("--check", action="store_true", help="verify the vendored folders")
    parser.add_argument("--licenses", action="store_true", help=f"rewrite {LISTING}")
    args = parser.parse_args(argv)
    if args.licenses:
        (VENDOR_DIR / LISTING).write_text(licence_listing(), encoding="utf-8")
        print(VENDOR_DIR / LISTING)
        return 0
    if args.check:
        problems = check()
        print("\n".join(problems) or "vendored assets match their packages")
        return 1 if problems else 0
    if not args.spec or not args.files:
        parser.error("give package@version and at least one file")
    print(vendor(args.spec, args.files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
