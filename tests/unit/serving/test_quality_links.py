"""The Data Docs link of a validation run (serving/routes_quality.data_docs_link): the stored
page path becomes /datadocs/<path under the site>, and nothing outside the site becomes a link."""

from __future__ import annotations

from serving.routes_quality import data_docs_link

GX = "/srv/citypipe/gx"
SITE = GX + "/gx/uncommitted/data_docs/local_site"


def test_a_page_under_the_site_links_to_its_path() -> None:
    page = SITE + "/validations/citypipe_air/r1-air-1a/20261121T020000.000000Z/air.html"
    assert data_docs_link(page, GX) == (
        "/datadocs/validations/citypipe_air/r1-air-1a/20261121T020000.000000Z/air.html"
    )
    assert data_docs_link("file://" + page, GX) == data_docs_link(page, GX)


def test_a_warehouse_built_under_another_home_still_links() -> None:
    page = "/old/home/gx/gx/uncommitted/data_docs/local_site/validations/s/r/t/air.html"
    assert data_docs_link(page, GX) == "/datadocs/validations/s/r/t/air.html"


def test_odd_characters_are_quoted_and_nothing_escapes_the_site() -> None:
    page = SITE + "/validations/s/run 1?#x/t/air.html"
    assert data_docs_link(page, GX) == "/datadocs/validations/s/run%201%3F%23x/t/air.html"
    assert data_docs_link(SITE + "/../../../etc/passwd", GX) is None
    assert data_docs_link("/etc/passwd", GX) is None
    assert data_docs_link(None, GX) is None
    assert data_docs_link("", GX) is None
