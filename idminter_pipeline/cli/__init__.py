"""The `idminter` command. Each domain adds its commands from its own module here.

Every command prints results on stdout (JSON where scripts consume it) and errors on stderr as one
line naming the offending value; exit status 2 means bad input, 1 any other refusal or failure.
No input prints a traceback unless asked for: `idminter --debug ...` or `IDMINTER_DEBUG=1`.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from idminter_pipeline.core.errors import IdMinterError, InvalidInputError
from idminter_pipeline.core.excerpts import excerpt

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
DEBUG_ENV = "IDMINTER_DEBUG"
_DEBUG_KEY = "idminter.debug"


# --- top-level error handling: one `error:` line, never a traceback unless asked for ------------
def _debugging(ctx: click.Context) -> bool:
    if ctx.meta.get(_DEBUG_KEY):
        return True
    return os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


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
# for the pandas, yoyo, Elasticsearch and Dagster-adjacent imports other commands need (start-up
# went from about 0.55 s to under 0.2 s). Name -> "module:attribute".
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


# Each command's first sentence of help, from which `idminter --help` makes its listing as click
# would, so listing the commands imports none of them (importing them all took 0.5-0.9 s).
# `tests/test_cli_startup.py` checks each against the command's own help, so they cannot drift.
_SUMMARIES = {
    "aliases": "Every source identifier mapped to CANONICAL_ID: original first, then aliases in "
    "order.",
    "db": "The registry database: server, schema migrations and state.",
    "local-run": "Run the whole pipeline locally on sample works and print a summary.",
    "impact": "Count, per ontology type and source system, the public IDs a candidate source "
    "index or store would mint anew, inherit and keep, and the published IDs no document would "
    "carry any more, against the identified works published today (the works store).",
    "lookup": 'Print {"Work[system/value]": "canonicalid"} for each given identifier that is '
    "registered.",
    "mint": "Mint every identifier in the works of one scope and write the identified works.",
    "mint-ids": "Look up or mint canonical IDs for JSON-lines requests, in one transaction.",
    "pool": "The pool of pre-generated free canonical IDs that minting claims.",
    "reconcile": "Find orphans, free IDs in use, mappings without IDs, predecessor mismatches and "
    "case/padding variants.",
    "shadow": "Work out what `mint` would assign to the works of one scope and compare each "
    "annotated document with the reference's document for the same state.sourceIdentifier.",
    "works": "Source works: sample data and real documents for the works store.",
}


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
        by its stored summary."""
        commands: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            if name in self.commands or name not in _SUMMARIES:
                command = self.get_command(ctx, name)
                if command is None or command.hidden:
                    continue
            else:
                command = click.Command(name, help=_SUMMARIES[name])
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
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
