"""serving/routes_datadocs.py without a server: the rewriting leaves no URL of another host in
GX's page templates (the installed GX version's, so an upgrade that adds a CDN asset fails here),
every CDN asset maps to a vendored file, and no path leaves the site folder."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from serving.routes_datadocs import (
    CDN_ASSETS,
    LOGO,
    BadPath,
    resolve,
    result_url,
    rewrite,
)

VENDOR_DIR = Path(__file__).resolve().parents[3] / "serving" / "static" / "vendor"
URL = re.compile(r"(?:https?:)?//[^\s\"'<>(){}]+")
# XML namespace names: identifiers, never fetched.
NAMESPACES = re.compile(r"https?://www\.w3\.org/")


def _foreign(text: str) -> list[str]:
    return [u for u in re.findall(r"https?://[^\s\"'<>]+", text) if not NAMESPACES.match(u)]


def _gx_view_dir() -> Path:
    spec = importlib.util.find_spec("great_expectations")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "render" / "view"


def test_gx_templates_and_styles_keep_no_url_of_another_host() -> None:
    view = _gx_view_dir()
    # The markdown_* templates are GX's Markdown renderer, not part of the HTML site.
    templates = [p for p in view.glob("templates/*.j2") if not p.name.startswith("markdown_")]
    files = [*templates, *view.rglob("static/**/*.css")]
    assert len(files) > 20
    before = sum(len(_foreign(p.read_text(encoding="utf-8"))) for p in files)
    assert before > 10  # the templates do name CDNs: the check below checks something
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert _foreign(rewrite(text, html=path.suffix == ".j2")) == [], path.name


def test_every_cdn_asset_gx_loads_is_vendored() -> None:
    """Mapped (not just dropped), to a file vendored with its SOURCE.json."""
    view = _gx_view_dir()
    loaded = set()
    for path in view.glob("templates/*.j2"):
        text = path.read_text(encoding="utf-8")
        loaded |= set(re.findall(r"<(?:script|link)[^>]*?(?:src|href)=\"(https?://[^\"]+)\"", text))
    loaded = {u for u in loaded if "great-expectations-web-assets" not in u}
    assert len(loaded) >= 10
    assert loaded <= set(CDN_ASSETS), loaded - set(CDN_ASSETS)
    for target in CDN_ASSETS.values():
        assert (VENDOR_DIR / target).is_file(), target
        package = target.split("/dist/")[0].split("/build/")[0].split("/css/")[0]
        assert (VENDOR_DIR / package / "SOURCE.json").is_file(), package


def test_rewrite_replaces_assets_and_drops_other_hosts() -> None:
    page = """<html><head>
<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>
<script src="https://cdn.example.org/unknown@1/x.js" integrity="sha384-x"></script>
<script src='//cdn.example.org/protocol-relative.js'></script>
<style>@import url("https://fonts.example.org/css?family=X");
.a { background: url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png') 0 0; }
.b { background-image: url(https://example.org/b.png); }</style>
<link rel="shortcut icon" href="../../../static/images/favicon.ico"/>
</head><body>
<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1&dataContextId=67239561-fdad-42a5-8206-643f486e93a8">
<a href="https://greatexpectations.io">Great Expectations</a>
<a href=https://example.org/unquoted>x</a>
<a href="../index.html">home</a> <a href="#section-1">top</a>
<svg xmlns="http://www.w3.org/2000/svg"></svg>
</body></html>"""
    out = rewrite(page, html=True)
    assert _foreign(out) == []
    assert "//cdn.example.org" not in out and "dataContextId" not in out
    assert 'href="/static/vendor/bootstrap@4.3.1/dist/css/bootstrap.min.css"' in out
    assert 'src="/static/vendor/vega@5.33.1/build/vega.min.js"' in out
    assert f'src="{LOGO}"' in out
    assert 'href="/datadocs/static/images/favicon.ico"' in out
    assert 'href="../index.html"' in out and 'href="#section-1"' in out
    assert "<a>Great Expectations</a>" in out
    assert "display: none" in out.split("</head>")[0]  # GX's footers


def test_a_longer_cdn_url_is_not_taken_for_a_major_version() -> None:
    # "…/npm/vega@5" is the whole URL; "…/npm/vega@5.1/x.js" is something else, so dropped.
    out = rewrite('<script src="https://cdn.jsdelivr.net/npm/vega@5.1/x.js"></script>', html=True)
    assert "vega@5.33.1" not in out and _foreign(out) == []


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "local_site"
    (root / "validations" / "air").mkdir(parents=True)
    (root / "index.html").write_text("index")
    (root / "validations" / "air" / "run.html").write_text("run")
    (tmp_path / "secret.txt").write_text("secret")
    (root / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (root / "up").symlink_to(tmp_path)
    (root / "inner.html").symlink_to(root / "index.html")
    return root


def test_resolve_finds_files_inside_the_site_only(site: Path) -> None:
    assert resolve(site, "index.html") == (site / "index.html").resolve()
    assert resolve(site, "validations/air/run.html") is not None
    assert resolve(site, "inner.html") == (site / "index.html").resolve()  # a link inside
    for absent in ("nothere.html", "validations", "leak.txt", "up/secret.txt", "%2e%2e/x"):
        assert resolve(site, absent) is None, absent
    assert resolve(site.parent / "no-site-yet", "index.html") is None


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "validations/../../secret.txt",
        "./index.html",
        "/etc/passwd",
        "validations//air/run.html",
        "",
        "index.html\x00.png",
        "..\\secret.txt",
        "C:/Windows/win.ini",
        "a/" * 600,
    ],
)
def test_resolve_refuses_paths_that_try_to_leave(site: Path, path: str) -> None:
    with pytest.raises(BadPath):
        resolve(site, path)


def test_result_url_of_a_stored_page() -> None:
    stored = (
        "/srv/citypipe/gx/gx/uncommitted/data_docs/local_site/validations/citypipe_air/"
        "load-1-air-0a1b2c/20261207T110942.486415Z/air.html"
    )
    expected = (
        "/datadocs/validations/citypipe_air/load-1-air-0a1b2c/20261207T110942.486415Z/air.html"
    )
    assert result_url(stored) == expected
    assert result_url("file://" + stored) == expected
    assert result_url(stored.replace("air.html", "a b#.html")).endswith("/a%20b%23.html")
    for bad in ("/srv/citypipe/elsewhere/air.html", "/x/data_docs/local_site/", ""):
        with pytest.raises(ValueError):
            result_url(bad)
