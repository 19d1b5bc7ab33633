"""Every vendored front-end folder matches the npm package it came from, names its licence and
holds nothing else (scripts/vendor_npm.py --check, no network)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from common.settings import REPO_ROOT


def _vendor_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("vendor_npm", REPO_ROOT / "scripts/vendor_npm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vendored_assets_match_their_packages() -> None:
    vendor = _vendor_module()
    assert list(vendor.VENDOR_DIR.rglob("SOURCE.json")), "nothing vendored"
    assert vendor.check() == []


def test_every_vendored_package_is_listed_with_its_licence() -> None:
    vendor = _vendor_module()
    listing_path = vendor.VENDOR_DIR / vendor.LISTING
    listing = listing_path.read_text(encoding="utf-8")
    assert listing == vendor.licence_listing(), (
        f"{listing_path.name} is out of date: run scripts/vendor_npm.py --licenses"
    )
    rows = {}
    for line in listing.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 6 and cells[0] not in ("package", "---"):
            rows[(cells[0], cells[1])] = cells
    sources = [json.loads(p.read_text()) for p in vendor.VENDOR_DIR.rglob("SOURCE.json")]
    assert len(rows) == len(sources)
    for source in sources:
        _, _, licence, files, tarball, integrity = rows[(source["package"], source["version"])]
        assert licence and licence == source["license"]
        assert tarball == source["tarball"] and integrity == f"`{source['integrity']}`"
        # Each licence file the row links to is in the folder, checked by the hash test above.
        folder = f"{source['package']}@{source['version']}"
        for link in files.split(", "):
            rel = link.split("](", 1)[1].rstrip(")")
            assert rel.startswith(folder + "/") and (vendor.VENDOR_DIR / rel).is_file()


def test_the_listing_follows_the_sources(tmp_path: Path) -> None:
    vendor = _vendor_module()
    folder = tmp_path / "pkg@1.0.0"
    folder.mkdir()
    (folder / "LICENSE").write_text("MIT")
    source = {
        "package": "pkg",
        "version": "1.0.0",
        "tarball": "https://example.invalid/pkg-1.0.0.tgz",
        "integrity": "sha512-abc",
        "license": "MIT",
        "files": {"LICENSE": _sha("MIT"), "a.js": _sha("a")},
    }
    (folder / "SOURCE.json").write_text(json.dumps(source))
    assert "| pkg | 1.0.0 | MIT | [LICENSE](pkg@1.0.0/LICENSE) |" in vendor.licence_listing(
        tmp_path
    )
    source["license"] = "ISC"
    (folder / "SOURCE.json").write_text(json.dumps(source))
    assert "| pkg | 1.0.0 | ISC |" in vendor.licence_listing(tmp_path)


def test_the_check_notices_an_edited_or_added_file(tmp_path: Path) -> None:
    vendor = _vendor_module()
    folder = tmp_path / "pkg@1.0.0"
    (folder / "dist").mkdir(parents=True)
    (folder / "LICENSE").write_text("MIT")
    (folder / "dist" / "a.js").write_text("edited")
    (folder / "extra.js").write_text("x")
    source = {
        "package": "pkg",
        "version": "1.0.0",
        "license": "MIT",
        "files": {"LICENSE": _sha("MIT"), "dist/a.js": _sha("original")},
    }
    (folder / "SOURCE.json").write_text(json.dumps(source))
    problems = vendor.check(tmp_path)
    assert any("dist/a.js differs" in p for p in problems)
    assert any("extra.js not from the package" in p for p in problems)


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()
