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
