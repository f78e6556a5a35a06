"""Which release runs (`idminter --version`, every asset's metadata in Dagster), and the upgrade
rule: the previous release's minting code runs on this release's schema."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tarfile
import warnings
from io import BytesIO
from pathlib import Path

import pytest
from click.testing import CliRunner
from db_helpers import fetch_all
from works_helpers import fill_pool

from idminter_pipeline.cli import main
from idminter_pipeline.core.release import RELEASE_ENV, package_version
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.minting import Minter, MintRequest

ROOT = Path(__file__).resolve().parents[1]
PREVIOUS_RELEASE = (ROOT / "tests" / "fixtures" / "previous-release").read_text().split()[0]


def test_version_names_the_package_version_and_the_release(monkeypatch):
    monkeypatch.setenv(RELEASE_ENV, "3f2c1ab")
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"idminter {package_version()} (release 3f2c1ab)"


def test_version_without_a_release_says_unreleased(monkeypatch):
    monkeypatch.delenv(RELEASE_ENV, raising=False)
    result = CliRunner().invoke(main, ["--version"])
    assert result.stdout.strip() == f"idminter {package_version()} (release unreleased)"


def test_a_release_that_is_not_a_tag_is_one_error_line(monkeypatch):
    monkeypatch.setenv(RELEASE_ENV, "v1; rm -rf /" + "x" * 400)
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: invalid {RELEASE_ENV} 'v1; rm -rf /") and len(line) < 400


def test_the_code_location_shows_its_release():
    """On every asset's page (its definition metadata: the UI shows no metadata of the code
    location itself) and in the `Definitions`' metadata."""
    code = (
        "import warnings; warnings.simplefilter('ignore'); "
        "from idminter_pipeline.definitions import defs; "
        "graph = defs.get_repository_def().asset_graph; "
        "text = lambda value: getattr(value, 'text', value); "
        "shown = [{k: text(defs.metadata[k]) for k in ('version', 'release')}]; "
        "shown += [{k: text(graph.get(a).metadata[k]) for k in ('version', 'release')} "
        "for a in graph.get_all_asset_keys()]; "
        "print(len(shown), [s for s in shown if s != shown[0]] or shown[0])"
    )
    env = {**os.environ, RELEASE_ENV: "release-42", "PYTHONPATH": str(ROOT)}
    probe = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    count, shown = probe.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(count) > 5
    assert ast.literal_eval(shown) == {"version": package_version(), "release": "release-42"}


def _git(args: list[str], reading: str, *, text: bool = True) -> subprocess.CompletedProcess:
    """`git ARGS` in this checkout: skips the test where there is no checkout (`reading`, what
    the command reads, is then not at hand), fails it naming the command otherwise."""
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=text, check=False)
    if result.returncode != 0:
        if not (ROOT / ".git").exists():
            pytest.skip(f"not a git checkout: {reading} cannot be read")
        stderr = result.stderr if text else result.stderr.decode(errors="replace")
        pytest.fail(f"git {' '.join(args[:2])}: {stderr[-500:]}")
    return result


def _previous_release(directory: Path) -> Path:
    """The previous release's package, as `git archive` gives it, unpacked into `directory`."""
    archive = _git(
        ["archive", "--format=tar", PREVIOUS_RELEASE, "idminter_pipeline"],
        "the previous release's source",
        text=False,
    )
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(directory, filter="data")
    return directory


def test_the_previous_releases_minting_runs_on_this_schema(registry, connect_registry, tmp_path):
    """Code of release N runs on the schema of N+1: migrations only add. The registry here is
    migrated by this release's sql/; the previous release's `mint-ids` mints and inherits on it,
    and this release reads back what it wrote."""
    fill_pool(connect_registry, 500)
    with Minter(connect_registry) as minter:
        (original,) = minter.mint_ids(
            [MintRequest(SourceIdentifier.parse("Work[sierra-system-number/b1]"), None)]
        ).values()
    old = _previous_release(tmp_path / "previous")
    requests = "\n".join(
        json.dumps(line)
        for line in (
            {"source": "Work[folio-instance/f1]", "predecessor": "Work[sierra-system-number/b1]"},
            {"source": "Work[sierra-system-number/b2]", "predecessor": None},
            {"source": "Item[sierra-system-number/i2]", "predecessor": None},
        )
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RDS_", "IDMINTER_"))},
        **registry.as_environment(),
        "PYTHONPATH": str(old),
        "IDMINTER_LOCAL_DIR": str(tmp_path / "local"),
    }
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from idminter_pipeline.cli import main; main()",
            "mint-ids",
            "--job-id",
            "previous-release",
        ],
        input=requests,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    minted = {line["source"]: line for line in map(json.loads, run.stdout.splitlines())}
    assert minted["Work[folio-instance/f1]"]["canonical_id"] == original.canonical_id
    assert minted["Work[folio-instance/f1]"]["outcome"] == "inherited"
    new_ids = {
        minted[s]["canonical_id"]
        for s in ("Work[sierra-system-number/b2]", "Item[sierra-system-number/i2]")
    }
    assert len(new_ids) == 2 and original.canonical_id not in new_ids
    with Minter(connect_registry) as minter:
        found = minter.lookup_ids(
            SourceIdentifier.parse(s) for s in (*minted, "Work[sierra-system-number/b1]")
        )
    assert {str(k): v for k, v in found.items()} == {
        **{source: line["canonical_id"] for source, line in minted.items()},
        "Work[sierra-system-number/b1]": original.canonical_id,
    }
    assigned = fetch_all(
        registry,
        "SELECT CanonicalId FROM canonical_ids "
        "WHERE Status = 'assigned' AND CanonicalId IN (%s, %s)",
        tuple(new_ids),
    )
    assert len(assigned) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        provenance = fetch_all(registry, "SELECT JobId FROM identifier_provenance")
    assert ("previous-release",) in provenance


DOCKER_BUILD = re.compile(r"docker build[^`\n]*")
BUILD_RELEASE = re.compile(r"--build-arg IDMINTER_RELEASE=(?P<release>\S+)")
IMAGE_TAG = re.compile(r"-t \S+:(?P<tag>[^\s\"']+)")


def documented_image_builds() -> list[tuple[str, str]]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [
        (page.relative_to(ROOT).as_posix(), command)
        for page in pages
        for command in DOCKER_BUILD.findall(page.read_text().replace("\\\n", " "))
    ]


def test_every_documented_image_build_gives_its_release_as_the_image_tag():
    """An image built as the docs say reports the release it is tagged with: `idminter
    --version`, every asset's metadata in Dagster and the Lambda's run-summary lines."""
    builds = documented_image_builds()
    assert {"deploy/Dockerfile", "deploy/lambda/Dockerfile"} <= {
        dockerfile for _, command in builds for dockerfile in re.findall(r"-f (\S+)", command)
    }
    for page, command in builds:
        release = BUILD_RELEASE.search(command)
        assert release, f"{page}: {command!r} builds an image that says 'release unreleased'"
        tag = IMAGE_TAG.search(command)
        if tag:
            assert release["release"].strip("\"'") == tag["tag"], (
                f"{page}: {command!r} tags the image otherwise than its release"
            )


@pytest.mark.parametrize("dockerfile", ["deploy/Dockerfile", "deploy/lambda/Dockerfile"])
def test_each_image_carries_its_build_release_in_the_environment(dockerfile):
    lines = (ROOT / dockerfile).read_text().splitlines()
    assert f"ARG {RELEASE_ENV}=unreleased" in lines
    assert f"ENV {RELEASE_ENV}=${{{RELEASE_ENV}}}" in lines


def test_the_previous_releases_migrations_are_unchanged_here():
    """Migrations only add: each migration the previous release shipped is here byte for byte,
    so a registry it migrated is the schema this release's migrations continue from."""
    changed = _git(
        ["diff", "--name-status", "--no-renames", PREVIOUS_RELEASE, "--", "sql/"],
        "the previous release's migrations",
    )
    rewritten = [
        line
        for line in changed.stdout.splitlines()
        if not line.startswith("A\t") and not line.endswith("/README.md")
    ]
    assert not rewritten, f"migrations of release {PREVIOUS_RELEASE} changed: {rewritten}"
