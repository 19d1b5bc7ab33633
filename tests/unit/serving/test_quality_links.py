"""The Data Docs link of a validation run (serving/routes_quality.data_docs_link): the stored
page path becomes its URL under /datadocs/ (routes_datadocs.result_url), and a path that is not
a page of the site becomes no link."""

from __future__ import annotations

from serving.routes_quality import data_docs_link

SITE = "/srv/citypipe/gx/gx/uncommitted/data_docs/local_site"


def test_a_page_under_the_site_links_to_its_path() -> None:
    page = SITE + "/validations/citypipe_air/r1-air-1a/20261121T020000.000000Z/air.html"
    assert data_docs_link(page) == (
        "/datadocs/validations/citypipe_air/r1-air-1a/20261121T020000.000000Z/air.html"
    )
    assert data_docs_link("file://" + page) == data_docs_link(page)


def test_odd_characters_are_quoted_and_nothing_leaves_the_site() -> None:
    page = SITE + "/validations/s/run 1?#x/t/air.html"
    assert data_docs_link(page) == "/datadocs/validations/s/run%201%3F%23x/t/air.html"
    assert data_docs_link(SITE + "/../../../etc/passwd") is None
    assert data_docs_link(SITE + "/./index.html") is None
    assert data_docs_link("/etc/passwd") is None
    assert data_docs_link(None) is None
    assert data_docs_link("") is None
