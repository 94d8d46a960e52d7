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
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "logtap = logtap.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
