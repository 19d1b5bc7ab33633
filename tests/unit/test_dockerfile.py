"""The Dockerfile's layer order and .dockerignore, checked without a Docker engine.

The dependency layer must be built from pyproject.toml and uv.lock alone, so that a source change
reuses it; the source comes in after it. .dockerignore keeps data, environments, caches and
secrets out of the build context, but nothing the image runs.
"""

from __future__ import annotations

import fnmatch
import shlex

import pytest

from common.settings import REPO_ROOT

ROOT = REPO_ROOT


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: comments dropped, continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if not full:
            continue
        word, _, args = full.partition(" ")
        out.append((word.upper(), args.strip()))
    if pending:
        raise ValueError(f"instruction continued past the end of the file: {pending!r}")
    return out


KNOWN = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def dockerfile() -> list[tuple[str, str]]:
    return instructions((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def index(steps: list[tuple[str, str]], pred: object) -> int:
    hits = [i for i, step in enumerate(steps) if pred(*step)]  # type: ignore[operator]
    assert len(hits) == 1, f"expected exactly one matching instruction, found {hits}"
    return hits[0]


def sync_args(args: str) -> list[str] | None:
    words = shlex.split(args)
    return words if words[:2] == ["uv", "sync"] else None


def test_parser_reads_continuations_and_comments() -> None:
    text = "# c\nFROM x\nENV A=1 \\\n    # inside\n    B=2\nRUN echo hi\n"
    assert instructions(text) == [("FROM", "x"), ("ENV", "A=1 B=2"), ("RUN", "echo hi")]
    with pytest.raises(ValueError):
        instructions("RUN a \\\n")


def test_dockerfile_is_well_formed() -> None:
    steps = dockerfile()
    assert steps[0][0] == "FROM", "the first instruction must be FROM"
    unknown = [word for word, _ in steps if word not in KNOWN]
    assert not unknown, f"unknown instructions: {unknown}"
    assert steps[-1][0] in {"CMD", "ENTRYPOINT"}


def test_dependency_layer_is_built_from_the_lock_alone() -> None:
    steps = dockerfile()
    deps = index(steps, lambda w, a: w == "RUN" and "--no-install-project" in a)
    words = sync_args(steps[deps][1])
    assert words is not None and {"--frozen", "--no-dev"} <= set(words)
    copies = [(i, a) for i, (w, a) in enumerate(steps) if w in {"COPY", "ADD"}]
    before = [a for i, a in copies if i < deps]
    assert before == ["pyproject.toml uv.lock ./"], (
        f"only pyproject.toml and uv.lock may be copied before the dependency sync: {before}"
    )


def test_source_comes_after_the_dependency_layer_and_is_synced() -> None:
    steps = dockerfile()
    deps = index(steps, lambda w, a: w == "RUN" and "--no-install-project" in a)
    source = index(steps, lambda w, a: w == "COPY" and a == ". .")
    project = index(
        steps,
        lambda w, a: w == "RUN" and sync_args(a) is not None and "--no-install-project" not in a,
    )
    assert deps < source < project
    words = sync_args(steps[project][1])
    assert words is not None and {"--frozen", "--no-dev"} <= set(words)


def ignored(patterns: list[str], path: str) -> bool:
    """Docker's rule, simplified: the last matching pattern wins; a pattern that matches a
    directory covers what is under it; a leading `**/` matches at any depth; `!` re-includes."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    tails = ["/".join(parts[n:]) for n in range(len(parts))]
    result = False
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat.removeprefix("!").rstrip("/")
        if pat.startswith("**/"):
            # any depth: the pattern matches a leading part of some tail of the path
            pat = pat.removeprefix("**/")
            hit = any(
                fnmatch.fnmatchcase(t_prefix, pat)
                for tail in tails
                for t_prefix in ["/".join(tail.split("/")[: n + 1]) for n in range(len(parts))]
            )
        else:
            hit = any(fnmatch.fnmatchcase(p, pat) for p in prefixes)
        if hit:
            result = not negate
    return result


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def test_ignore_matcher() -> None:
    pats = ["data/", "**/__pycache__/", "*.duckdb", "!keep.duckdb"]
    assert ignored(pats, "data/x.parquet")
    assert ignored(pats, "common/__pycache__/sql.cpython-311.pyc")
    assert ignored(pats, "w.duckdb")
    assert not ignored(pats, "keep.duckdb")
    assert not ignored(pats, "common/sql.py")


@pytest.mark.parametrize(
    "path",
    [
        "data/citypipe.duckdb",
        ".venv/bin/python",
        ".git/HEAD",
        ".tools/bin/uv",
        ".pytest_cache/v/cache/nodeids",
        ".ruff_cache/CACHEDIR.TAG",
        ".mypy_cache/3.11/common",
        "common/__pycache__/sql.cpython-311.pyc",
        ".env",
        "deploy/secrets/mqtt_password",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert ignored(dockerignore(), path), f"{path} would be sent to the build context"


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "common/settings.py",
        "citypipe/cli.py",
        "dags/citypipe_ingest.py",
        "warehouse/migrations/0001_schemas.sql",
        "transforms/sql/marts/kpi_daily_air.sql",
        "reference/sites/wushan/air_stations.csv",
        "deploy/mosquitto/mosquitto.conf",
    ],
)
def test_dockerignore_keeps_what_the_image_needs(path: str) -> None:
    assert not ignored(dockerignore(), path), f"{path} is needed in the image"


def test_every_package_of_the_wheel_reaches_the_image() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    for package in packages:
        assert not ignored(dockerignore(), f"{package}/__init__.py"), package
