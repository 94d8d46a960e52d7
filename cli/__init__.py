"""The ``logtap`` command line: parses, calls the library, renders. No logic of its own.

Commands live in small modules and are imported only when needed, so ``logtap --version``
and ``logtap filter`` stay quick.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from logtap._version import __version__
from logtap.errors import LogtapError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# command name -> "module:attribute" (module relative to logtap.cli)
COMMANDS: dict[str, str] = {
    "query": "logs:query",
    "stats": "logs:stats",
    "sql": "logs:sql",
    "filter": "logs:filter_cmd",
    "export": "export:export",
    "validate": "export:validate",
    "distill": "distill:distill",
    "athena": "athena:athena",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(f"logtap.cli.{module_name}")
        except ModuleNotFoundError as exc:  # a command whose module is not built yet
            if exc.name == f"logtap.cli.{module_name}":
                return None
            raise
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """The single error boundary: handled errors become ``Error: ...`` and exit 1.

        Anything else is a bug and keeps its traceback. ``LOGTAP_DEBUG=1`` shows
        tracebacks for handled errors too.
        """
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not _handled(exc) or os.environ.get("LOGTAP_DEBUG"):
                raise
            raise click.ClickException(str(exc)) from exc


def _handled(exc: Exception) -> bool:
    """A LogtapError, or an AWS error from botocore (only loaded if botocore raised it: local
    commands never import it)."""
    if isinstance(exc, LogtapError):
        return True
    aws = sys.modules.get("botocore.exceptions")
    return aws is not None and isinstance(exc, (aws.BotoCoreError, aws.ClientError))


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="logtap")
def cli() -> None:
    """Query Amazon Bedrock invocation logs and turn them into distillation datasets.

    \b
    Examples:
      logtap query s3://my-logs/AWSLogs --where project=support --since 7d
      logtap stats ./logs --by model --by tag:project
      logtap export ./logs --mode prompt-response --output train.jsonl
    """


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point. Exit codes: 0 success, 1 user or data error, 2 usage error."""
    return cli.main(args=argv, prog_name="logtap")
