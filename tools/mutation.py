"""Sampled mutation testing of the registry and works modules (`make mutation`; never `make test`).

Cosmic Ray (PyPI `cosmic-ray`, the `mutation` extra) lists every mutant of the modules below:
each is one small change (an operator swapped, a comparison flipped, a number changed, a
condition negated, an exception handler widened...). Mutants inside type annotations are
counted apart and never run: with `from __future__ import annotations` annotations are never
evaluated, so those mutants are equivalent by construction. A full run needs one test run per
mutant, thousands of them against the real server, so by default a random sample (`--sample`, seeded
with `--seed`, printed) is drawn across all groups together and every other mutant is marked
skipped. Each sampled mutant runs its group's tests (`pytest -x`, so a killed mutant stops at the
first failure): a failing run kills it, a passing one means it survived.

Each group's tests first run once on the unmutated copy (`cosmic-ray baseline`): a failing
baseline stops the run, since every mutant would then look killed. Nothing in the working tree is
touched: the tracked files are copied to
`.local/mutation/<run>/tree`, Cosmic Ray mutates the copy in place, and `PYTHONPATH` makes every
process (pytest and the `idminter` processes tests start) import the copy. The report, with each
survivor's diff, goes to `.local/mutation/<run>/report.md` and `report.json`.

    python -m tools.mutation [--sample 60] [--seed N] [--group minting ...] [--all]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
PACKAGE = "idminter_pipeline"
EQUIVALENT_ANNOTATION = "equivalent: inside a type annotation, which is never evaluated"


@dataclass(frozen=True)
class Group:
    """Modules mutated together and the tests that should notice."""

    name: str
    modules: tuple[str, ...]
    tests: tuple[str, ...]


GROUPS = (
    Group(
        "minting",
        (
            "registry/minting/minter.py",
            "registry/minting/plan.py",
            "registry/minting/statements.py",
            "registry/minting/aliases.py",
        ),
        ("tests/test_minting_*.py", "tests/test_collation.py", "tests/test_registry_outage.py"),
    ),
    Group(
        "pool",
        (
            "registry/pool/top_up.py",
            "registry/pool/health.py",
            "registry/pool/watch.py",
            "canonical_ids.py",
        ),
        ("tests/test_pool_*.py", "tests/test_canonical_ids.py"),
    ),
    Group(
        "reconciliation",
        (
            "registry/reconciliation/repair.py",
            "registry/reconciliation/variants.py",
            "registry/reconciliation/keyset.py",
            "registry/reconciliation/retired_ids.py",
        ),
        ("tests/test_reconciliation*.py",),
    ),
    Group(
        "legacy_migration",
        tuple(f"registry/legacy_migration/{name}.py" for name in ("state", "dry_run", "copy")),
        ("tests/test_legacy_*.py",),
    ),
    Group(
        "legacy_verify_swap",
        tuple(f"registry/legacy_migration/{name}.py" for name in ("verify", "swap", "run")),
        ("tests/test_legacy_*.py",),
    ),
    Group(
        "connection_outage_schema",
        ("registry/connection.py", "registry/outage.py", "registry/schema.py"),
        (
            "tests/test_connection.py",
            "tests/test_registry_outage.py",
            "tests/test_schema_migrations.py",
        ),
    ),
    Group(
        "source_identifiers",
        ("source_identifiers.py",),
        ("tests/test_source_identifiers.py", "tests/test_input_validation.py"),
    ),
    Group(
        "works",
        (
            "works/documents.py",
            "works/pipeline.py",
            "works/churn_guard.py",
            "works/checkpoints.py",
            "works/downstream.py",
            "works/runner.py",
            "works/stores/base.py",
            "works/stores/sqlite.py",
        ),
        ("tests/test_works_*.py", "tests/test_churn_guard.py", "tests/test_cli_works.py"),
    ),
)


@dataclass
class GroupResult:
    name: str
    mutants: int
    in_annotations: int = 0
    sampled: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    survivors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def killed(self) -> int:
        return self.outcomes["killed"]

    @property
    def survived(self) -> int:
        return self.outcomes["survived"]

    @property
    def score(self) -> float | None:
        judged = self.killed + self.survived
        return self.killed / judged if judged else None


def _copy_tree(destination: Path) -> None:
    """The tracked files as they are now in the working tree (uncommitted edits included)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=PROJECT, capture_output=True, check=True
    ).stdout.decode()
    for relative in filter(None, listed.split("\0")):
        source = PROJECT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _config(group: Group, tree: Path, timeout: float) -> str:
    # Modules a branch does not have (yet) are left out rather than failing the run.
    present = [m for m in group.modules if (tree / PACKAGE / m).is_file()]
    modules = ", ".join(json.dumps(f"{PACKAGE}/{module}") for module in present)
    tests = " ".join(str(path) for pattern in group.tests for path in sorted(tree.glob(pattern)))
    command = f"{sys.executable} -m pytest -x -q -p no:cacheprovider --timeout 600 {tests}"
    return (
        "[cosmic-ray]\n"
        f"module-path = [{modules}]\n"
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )


def _cosmic_ray(tree: Path, *args: str) -> None:
    subprocess.run(
        [str(Path(sys.executable).parent / "cosmic-ray"), *args],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
    )


Span = tuple[tuple[int, int], tuple[int, int]]


def _annotation_spans(path: Path) -> list[Span]:
    """Where a module's type annotations are. With `from __future__ import annotations` (every
    module here) they are never evaluated, so a mutant inside one is equivalent by
    construction: it is counted apart, never run."""
    spans: list[Span] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.arg | ast.AnnAssign):
            annotations.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotations.append(node.returns)
        for annotation in filter(None, annotations):
            end = (annotation.end_lineno or annotation.lineno, annotation.end_col_offset or 0)
            spans.append(((annotation.lineno, annotation.col_offset), end))
    return spans


def _in_annotation(mutation: Any, tree: Path, cache: dict[Path, list[Span]]) -> bool:
    path = tree / mutation.module_path
    if path not in cache:
        cache[path] = _annotation_spans(path)
    start, end = tuple(mutation.start_pos), tuple(mutation.end_pos)
    return any(low <= start and end <= high for low, high in cache[path])


def _sample(
    sessions: dict[str, Path], size: int | None, rng: random.Random, tree: Path
) -> tuple[dict[str, int], dict[str, int]]:
    """Mark every mutant outside the sample as skipped, and every annotation mutant as
    equivalent; return the mutants per group, and the annotation mutants per group."""
    from cosmic_ray.work_db import WorkDB, use_db  # noqa: PLC0415 - the mutation extra
    from cosmic_ray.work_item import WorkerOutcome, WorkResult  # noqa: PLC0415

    jobs: list[tuple[str, str]] = []
    totals: dict[str, int] = {}
    equivalent: dict[str, int] = {}
    cache: dict[Path, list[Span]] = {}
    for name, session in sessions.items():
        with use_db(str(session), WorkDB.Mode.open) as db:
            items = list(db.work_items)
            in_annotations = [
                item.job_id
                for item in items
                if all(_in_annotation(m, tree, cache) for m in item.mutations)
            ]
            if in_annotations:
                db.set_multiple_results(
                    in_annotations,
                    WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=EQUIVALENT_ANNOTATION),
                )
        totals[name] = len(items)
        equivalent[name] = len(in_annotations)
        skip = set(in_annotations)
        jobs += [(name, item.job_id) for item in items if item.job_id not in skip]
    keep = set(jobs) if size is None or size >= len(jobs) else set(rng.sample(jobs, size))
    for name, session in sessions.items():
        skipped = [job for group, job in jobs if group == name and (group, job) not in keep]
        if skipped:
            with use_db(str(session), WorkDB.Mode.open) as db:
                db.set_multiple_results(skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
    return totals, equivalent


def _results(name: str, session: Path, total: int, in_annotations: int) -> GroupResult:
    from cosmic_ray.work_db import WorkDB, use_db  # noqa: PLC0415
    from cosmic_ray.work_item import WorkerOutcome  # noqa: PLC0415

    result = GroupResult(name, total, in_annotations)
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, outcome in db.completed_work_items:
            if outcome.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            result.sampled += 1
            verdict = (
                outcome.test_outcome.value
                if outcome.worker_outcome == WorkerOutcome.NORMAL and outcome.test_outcome
                else outcome.worker_outcome.value
            )
            result.outcomes[verdict] += 1
            if verdict == "survived":
                mutation = item.mutations[0]
                result.survivors.append(
                    {
                        "module": str(mutation.module_path),
                        "line": mutation.start_pos[0],
                        "operator": mutation.operator_name,
                        "diff": outcome.diff or "",
                    }
                )
    return result


def _report(results: list[GroupResult], run_dir: Path, meta: dict[str, Any]) -> str:
    killed = sum(r.killed for r in results)
    survived = sum(r.survived for r in results)
    total_score = killed / (killed + survived) if killed + survived else 0.0
    lines = [
        f"# Mutation testing, {meta['started']} (commit {meta['commit']}, seed {meta['seed']})",
        "",
        f"Sampled {sum(r.sampled for r in results)} of "
        f"{sum(r.mutants - r.in_annotations for r in results)} mutants "
        f"({sum(r.in_annotations for r in results)} more lie in type annotations: equivalent, "
        f"not run); killed {killed}, survived {survived}: score {total_score:.0%} "
        f"({meta['minutes']:.0f} min).",
        "",
        "| group | mutants | in annotations | sampled | killed | survived | other | score |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        other = sum(n for k, n in r.outcomes.items() if k not in ("killed", "survived"))
        score = f"{r.score:.0%}" if r.score is not None else "-"
        lines.append(
            f"| {r.name} | {r.mutants} | {r.in_annotations} | {r.sampled} | {r.killed} "
            f"| {r.survived} | {other} | {score} |"
        )
    lines += ["", "## Survivors", ""]
    for r in results:
        for survivor in r.survivors:
            lines += [
                f"### {survivor['module']}:{survivor['line']} ({survivor['operator']})",
                "",
                "```diff",
                survivor["diff"].strip(),
                "```",
                "",
            ]
    text = "\n".join(lines)
    (run_dir / "report.md").write_text(text, encoding="utf-8")
    (run_dir / "report.json").write_text(
        json.dumps(
            {
                **meta,
                "groups": [
                    {
                        "name": r.name,
                        "mutants": r.mutants,
                        "in_annotations": r.in_annotations,
                        "sampled": r.sampled,
                        "outcomes": dict(r.outcomes),
                        "survivors": r.survivors,
                    }
                    for r in results
                ],
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mutation", description=__doc__)
    parser.add_argument("--sample", type=int, default=60, help="mutants to run (default 60)")
    parser.add_argument("--all", action="store_true", help="run every mutant (hours)")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed (printed)")
    parser.add_argument("--group", action="append", choices=[g.name for g in GROUPS])
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant")
    args = parser.parse_args(argv)
    if args.sample < 1:
        parser.error(f"--sample must be a positive number of mutants, got {args.sample}")
    seed = args.seed if args.seed is not None else random.randrange(1, 10**6)
    groups = [g for g in GROUPS if not args.group or g.name in args.group]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    run_dir = PROJECT / ".local" / "mutation" / time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    tree = run_dir / "tree"
    _copy_tree(tree)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(f"mutation run in {run_dir} (seed {seed}; --seed {seed} repeats the sample)", flush=True)
    sessions: dict[str, Path] = {}
    for group in groups:
        config = run_dir / f"{group.name}.toml"
        config.write_text(_config(group, tree, args.timeout), encoding="utf-8")
        sessions[group.name] = run_dir / f"{group.name}.sqlite"
        _cosmic_ray(tree, "init", str(config), str(sessions[group.name]))
    totals, equivalent = _sample(
        sessions, None if args.all else args.sample, random.Random(seed), tree
    )
    clock = time.monotonic()
    for group in groups:
        # The group's tests must pass on the unmutated copy, or every mutant would look killed.
        print(f"baseline {group.name} ...", flush=True)
        _cosmic_ray(tree, "baseline", str(run_dir / f"{group.name}.toml"))
        print(f"running {group.name} ...", flush=True)
        _cosmic_ray(tree, "exec", str(run_dir / f"{group.name}.toml"), str(sessions[group.name]))
    results = [
        _results(g.name, sessions[g.name], totals[g.name], equivalent[g.name]) for g in groups
    ]
    meta = {
        "started": started,
        "commit": commit,
        "seed": seed,
        "sample": None if args.all else args.sample,
        "minutes": (time.monotonic() - clock) / 60,
    }
    print(_report(results, run_dir, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
