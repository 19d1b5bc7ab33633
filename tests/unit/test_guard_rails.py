"""The guard rails' own configuration: warning filters, pre-commit = make check, SQLFluff templating."""

from __future__ import annotations

import re
import tomllib
import warnings

import pytest
import yaml

from common.settings import REPO_ROOT

ROOT = REPO_ROOT


def warn_from(module: str, category: type[Warning]) -> None:
    """Raise a warning attributed to ``module`` (as if one of its lines had called warn)."""
    code = compile("import warnings\nwarnings.warn('probe', CATEGORY, stacklevel=1)\n", "x", "exec")
    exec(code, {"__name__": module, "CATEGORY": category})


def test_a_deprecation_in_our_code_fails_the_test() -> None:
    for module in ("warehouse.load", "common", "steps.ingest", "dags.citypipe_ingest"):
        with pytest.raises(DeprecationWarning):
            warn_from(module, DeprecationWarning)


def test_a_third_party_deprecation_stays_visible() -> None:
    for module in ("great_expectations.core", "airflow.sdk", "warehouse_tools"):
        with pytest.warns(DeprecationWarning):
            warn_from(module, DeprecationWarning)


def test_no_blanket_warning_filter() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    filters = config["tool"]["pytest"]["ini_options"]["filterwarnings"]
    for f in filters:
        action, message, _category, module = ([*f.split(":"), "", "", ""])[:4]
        if action == "ignore":
            assert message or module, f"filter by category alone: {f!r}"


def make_targets(makefile: str) -> dict[str, str]:
    """target -> recipe (tab-indented lines joined), for simple rules."""
    targets: dict[str, str] = {}
    current = None
    for line in makefile.splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+):(?!=)", line)
        if m:
            current = m.group(1)
            targets[current] = ""
        elif line.startswith("\t") and current:
            targets[current] += line.strip() + "\n"
        elif line.strip() and not line.startswith("#"):
            current = None
    return targets


def test_pre_commit_runs_what_make_check_runs() -> None:
    targets = make_targets((ROOT / "Makefile").read_text(encoding="utf-8"))
    m = re.search(r"\$\(MAKE\)[^\n]*?((?:\s+[a-z][a-z-]*)+)\s*$", targets["check"], re.M)
    assert m, targets["check"]
    check_targets = m.group(1).split()
    assert set(check_targets) == {"lint", "typecheck", "sqllint"}
    for target in check_targets:
        assert targets[target].strip(), f"make {target} runs nothing"

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    assert [r["repo"] for r in config["repos"]] == ["local"], "hooks must not download anything"
    hooks = config["repos"][0]["hooks"]
    entries = sorted(h["entry"] for h in hooks)
    assert entries == sorted(f"make --no-print-directory {t}" for t in check_targets)
    for hook in hooks:
        assert hook["language"] == "system" and hook["pass_filenames"] is False


def test_make_check_runs_ruff_mypy_and_sqlfluff() -> None:
    targets = make_targets((ROOT / "Makefile").read_text(encoding="utf-8"))
    assert "ruff check ." in targets["lint"] and "ruff format --check ." in targets["lint"]
    assert "mypy $(PY_PACKAGES)" in targets["typecheck"]
    assert "sqlfluff lint $(SQL_DIRS)" in targets["sqllint"]
    assert "python -m bench.bench_seq_gaps" in targets["bench-seq-gaps"]


def lint_sql(sql: str) -> list[tuple[str, str]]:
    from sqlfluff.core import FluffConfig, Linter

    config = FluffConfig.from_path(str(ROOT))
    result = Linter(config=config).lint_string(sql, fname=str(ROOT / "common/sql/probe.sql"))
    return [(v.rule_code(), v.desc()) for v in result.get_violations()]


def test_sqlfluff_reads_our_parameters_and_placeholders() -> None:
    sql = (
        "delete from core.obs_{{feed}} where local_date between $start_date and $end_date;\n"
        "\n"
        "insert into core.obs_{{feed}} by name\n"
        "select\n"
        "    s.site_id,\n"
        "    $loaded_at as loaded_at\n"
        "from staging.landing_{{feed}} as s\n"
        "inner join core.dim_site as d on s.site_id = d.site_id\n"
        "where s.local_date between $start_date and $end_date\n"
        "order by s.site_id\n"
        "limit $max_rows;\n"
        "\n"
        "create or replace view staging.landing_{{feed}} as\n"
        "select *\n"
        "from read_parquet({{path}}, hive_partitioning = true);\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqlfluff's own import-time chatter is not ours
        found = lint_sql(sql)
    # A parameter is a value (not an unqualified column, not a self-alias) and parses.
    assert found == []


def test_sqlfluff_still_flags_the_house_style() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = lint_sql("SELECT a.x FROM a WHERE a.y = $y\n")
    assert {"CP01", "LT14"} <= {code for code, _ in found}
