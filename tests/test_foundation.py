"""Packaging and project-contract checks."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import logtap
from logtap.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_import_logtap_does_not_import_duckdb_or_click() -> None:
    code = (
        "import sys, logtap\n"
        "heavy = [m for m in ('duckdb', 'click', 'boto3', 'logtap.engine') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_lazy_public_names_resolve() -> None:
    assert callable(logtap.instrument)
    assert callable(logtap.tags)
    assert issubclass(logtap.TagError, logtap.LogtapError)
    with pytest.raises(AttributeError):
        logtap.no_such_name  # noqa: B018


def test_version_and_help() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and logtap.__version__ in result.output
    result = runner.invoke(cli, ["-h"])
    assert result.exit_code == 0 and "Usage:" in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_and_is_in_readme(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert re.search(rf"logtap {name}\b", README), f"`logtap {name}` is not shown in README.md"


def test_unknown_command_is_usage_error() -> None:
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2


def test_wheel_has_no_top_level_cli_or_converters(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("logtap-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert "cli" not in tops and "converters" not in tops
    assert "logtap/cli/__init__.py" in names
    assert "logtap/converters/__init__.py" in names
    assert "logtap/py.typed" in names
    assert "logtap/data/distill_pairs.json" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "logtap = logtap.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_editable_install_exposes_only_the_logtap_namespace(tmp_path: Path) -> None:
    code = (
        "import importlib, importlib.util\n"
        "print(importlib.util.find_spec('cli') is None, importlib.util.find_spec('converters') is None)\n"
        "import logtap.cli, logtap.converters\n"
        "print(logtap.cli.__file__, logtap.converters.__file__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    first, second = out.stdout.splitlines()
    assert first == "True True"
    assert second.split() == [str(ROOT / "cli" / "__init__.py"), str(ROOT / "converters" / "__init__.py")]


def test_httpfs_wheel_is_pinned_to_the_duckdb_version() -> None:
    import importlib.metadata as md

    pins = dict(re.findall(r'^\s*"([a-z-]+)==([0-9.]+)",', (ROOT / "pyproject.toml").read_text(), re.M))
    assert pins["duckdb"] == pins["duckdb-extension-httpfs"]
    assert md.version("duckdb") == md.version("duckdb-extension-httpfs") == pins["duckdb"]


def test_make_targets_and_ci_entry() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test", "bench", "lint"):
        assert re.search(rf"^{target}:.*", makefile, re.M), target
    assert re.search(r"^test: lint", makefile, re.M)
    assert "-m venv" in makefile
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert (ROOT / ".ci" / "run").stat().st_mode & 0o111


def test_readme_first_screen_has_the_two_setup_commands_then_the_tagging_example() -> None:
    first_screen = "\n".join(README.splitlines()[:40])
    assert "make demo" in first_screen and "make test" in first_screen
    assert first_screen.index("make demo") < first_screen.index("logtap.instrument(")
