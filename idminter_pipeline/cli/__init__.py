"""The `idminter` command. Each domain adds its commands from its own module here.

Every command prints results on stdout (JSON where scripts consume it) and errors on stderr as one
line naming the offending value; exit status 2 means bad input, 1 any other refusal or failure.
No input prints a traceback unless asked for: `idminter --debug ...` or `IDMINTER_DEBUG=1`.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from idminter_pipeline.core.errors import IdMinterError, InvalidInputError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.settings import env_flag

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
DEBUG_ENV = "IDMINTER_DEBUG"
_DEBUG_KEY = "idminter.debug"


# --- top-level error handling: one `error:` line, never a traceback unless asked for ------------
def _debugging(ctx: click.Context) -> bool:
    return bool(ctx.meta.get(_DEBUG_KEY))


def _fail(ctx: click.Context, message: str, code: int) -> NoReturn:
    if _debugging(ctx):
        traceback.print_exc()
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _missing_registry_table(error: Exception) -> bool:
    """The server's "table doesn't exist" (1146), as pymysql raises it; matched by name, so that
    the CLI imports no database client before a command needs one."""
    return (
        type(error).__module__.startswith("pymysql")
        and len(error.args) == 2
        and error.args[0] == 1146
    )


def _undecodable_argument(args: Sequence[str]) -> tuple[int, str] | None:
    """The first argument that was not valid UTF-8 (Python keeps its bytes as surrogates)."""
    for position, arg in enumerate(args, start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return position, arg
    return None


# -- lazy commands -------------------------------------------------------------------------------
# Each command's module is imported when that command runs, so `idminter lookup` does not pay
# for the pandas, yoyo, Elasticsearch and Dagster-adjacent imports other commands need, and
# every `--help` stays under 0.2 s. Name -> "module:attribute".
_COMMANDS = {
    "db": "idminter_pipeline.cli.db:db",
    "local-run": "idminter_pipeline.cli.local_run:local_run",
    "works": "idminter_pipeline.cli.works:works",
    "mint": "idminter_pipeline.cli.works:mint",
    "impact": "idminter_pipeline.cli.impact:impact",
    "shadow": "idminter_pipeline.cli.shadow:shadow",
    "pool": "idminter_pipeline.cli.pool:pool",
    "lookup": "idminter_pipeline.cli.minting:lookup",
    "mint-ids": "idminter_pipeline.cli.minting:mint_ids",
    "aliases": "idminter_pipeline.cli.minting:aliases",
    "reconcile": "idminter_pipeline.cli.reconcile:reconcile",
}
# Every top-level command's name, for whatever must cover them all (docs, benchmarks, tests).
COMMAND_NAMES = tuple(sorted(_COMMANDS))


def _stored_help(name: str) -> str | None:
    """The help of command `name` as click will read it (its function's docstring), found in
    its module's source without importing the module: listing the commands imports none of
    them (importing them all takes 0.5-0.9 s)."""
    module, attribute = _COMMANDS[name].split(":")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attribute:
            return ast.get_docstring(node)
    return None


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS and cmd_name not in self.commands:
            module, attribute = _COMMANDS[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing (same width rule), with a command not yet imported stood in for
        by the help in its source."""
        commands: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            stored = None if name in self.commands else _stored_help(name)
            if stored is None:
                command = self.get_command(ctx, name)
                if command is None or command.hidden:
                    continue
            else:
                command = click.Command(name, help=stored)
            commands.append((name, command))
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            rows = [(name, command.get_short_help_str(limit)) for name, command in commands]
            with formatter.section("Commands"):
                formatter.write_dl(rows)


# -- end of lazy commands ------------------------------------------------------------------------


class _Main(_LazyGroup):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        undecodable = _undecodable_argument(args)
        if undecodable is not None:
            position, arg = undecodable
            raw = os.fsencode(arg)
            click.echo(f"error: argument {position} is not valid UTF-8: {excerpt(raw)}", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidInputError as error:
            _fail(ctx, str(error), EXIT_BAD_INPUT)
        except IdMinterError as error:
            _fail(ctx, str(error), EXIT_FAILURE)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click reports these itself (usage errors exit 2)
        except Exception as error:
            if _missing_registry_table(error):
                _fail(
                    ctx,
                    f"the registry has no such table ({excerpt(str(error.args[1]))}): its schema "
                    "is not applied here; run `idminter db migrate` (or materialize "
                    "registry_schema in Dagster)",
                    EXIT_FAILURE,
                )
            # A bug or an environment problem nobody anticipated: name it in one line.
            hint = f" (for the traceback: idminter --debug or {DEBUG_ENV}=1)"
            _fail(
                ctx,
                f"unexpected {type(error).__name__}: {excerpt(str(error))}{hint}",
                EXIT_FAILURE,
            )


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from idminter_pipeline.core.release import describe_release  # noqa: PLC0415

    try:
        click.echo(f"idminter {describe_release()}")
    except InvalidInputError as error:
        _fail(ctx, str(error), EXIT_BAD_INPUT)
    ctx.exit()


@click.group(cls=_Main)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the version and the deployed release (IDMINTER_RELEASE), and exit.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
@click.option(
    "--debug",
    is_flag=True,
    help=f"Print the traceback of any error (also with {DEBUG_ENV}=1).",
)
@click.pass_context
def main(ctx: click.Context, verbose: bool, debug: bool) -> None:
    """Stable public identifiers for catalogue records (RFC 083)."""
    ctx.meta[_DEBUG_KEY] = debug
    # Read after the flag is kept: a bad value is refused as one error line like any other.
    ctx.meta[_DEBUG_KEY] = debug or env_flag(DEBUG_ENV)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
