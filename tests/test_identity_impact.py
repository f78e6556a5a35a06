"""The identity impact of a candidate source store (`works.impact`, `idminter impact`), against
the real registry: read-only, counted per ontology type and source system, and blocking when a
transformer change would re-key published IDs."""

import json

import dagster as dg
import pytest
from click.testing import CliRunner
from db_helpers import fetch_all
from works_helpers import embedded_store_holding, fill_pool, node, work

from idminter_pipeline.cli import main
from idminter_pipeline.core.errors import InvalidSettingError
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.defs.works.assets import candidate_impact
from idminter_pipeline.defs.works.resources import ImpactCandidateResource, WorksStoreResource
from idminter_pipeline.works.impact import Fate, ImpactThresholds, assess_impact
from idminter_pipeline.works.pipeline import WorksPipeline
from idminter_pipeline.works.stores import FullScope, IdsScope, SqliteWorksStore

WORKS = 100
CONCEPTS_PER_WORK = 10


def _catalogue(count=WORKS, *, suffix="", first=0):
    """Works each carrying one item and ten label-derived concepts (`suffix` changes labels)."""
    works = []
    for n in range(first, first + count):
        source = work("sierra-system-number", f"b{n}", items=(f"i{n}",))
        source.document["data"]["subjects"] = [
            {"id": node("label-derived", "Concept", f"subject {n}-{c}{suffix}"), "label": "x"}
            for c in range(CONCEPTS_PER_WORK)
        ]
        works.append(source)
    return works


@pytest.fixture
def published(tmp_path, connect_registry, minter):
    """The store minted today: its identified documents are what the public sees."""
    fill_pool(connect_registry, 2_000)
    with SqliteWorksStore(tmp_path / "published.sqlite3") as store:
        store.put_source(_catalogue())
        summary = WorksPipeline(store, minter).run(FullScope())
        assert summary.works_written == WORKS
        yield store


def _candidate(tmp_path, works, name="candidate.sqlite3"):
    store = SqliteWorksStore(tmp_path / name)
    store.put_source(works)
    return store


def _registry_rows(settings):
    return fetch_all(settings, "SELECT COUNT(*) FROM identifiers")[0][0], fetch_all(
        settings, "SELECT COUNT(*) FROM canonical_ids WHERE Status = 'free'"
    )[0][0]


def test_a_concept_label_change_that_re_keys_1000_concepts_is_blocked_and_names_them(
    tmp_path, published, registry, connect_registry
):
    before = _registry_rows(registry)
    identified_before = published.count_identified()
    with _candidate(tmp_path, _catalogue(suffix=" (revised)")) as candidate:
        report = assess_impact(candidate, published, connect_registry, FullScope())
        assert candidate.count_identified() == 0

    concepts = report.counts[("Concept", "label-derived")]
    assert concepts[Fate.NEW] == WORKS * CONCEPTS_PER_WORK
    assert concepts[Fate.UNCARRIED] == WORKS * CONCEPTS_PER_WORK
    assert concepts[Fate.KEPT] == 0
    assert report.counts[("Work", "sierra-system-number")][Fate.KEPT] == WORKS
    assert report.counts[("Item", "folio-item")][Fate.KEPT] == WORKS
    assert report.total(Fate.UNCARRIED) == WORKS * CONCEPTS_PER_WORK

    assert report.breaches == [
        "1,000 Concept label-derived ID(s) published would no longer be carried by any "
        "document (limit 100, IDMINTER_IMPACT_MAX_UNCARRIED)"
    ]
    uncarried = report.listed[("Concept", "label-derived", Fate.UNCARRIED)]
    assert len(uncarried) == 100
    assert uncarried[0].source == "Concept[label-derived/subject 0-0]"
    assert uncarried[0].work_id == "Work[sierra-system-number/b0]"
    registered = dict(
        fetch_all(
            registry,
            "SELECT SourceId, CanonicalId FROM identifiers WHERE SourceSystem = 'label-derived'",
        )
    )
    assert all(
        registered["subject " + e.source.split("subject ")[1][:-1]] == e.canonical_id
        for e in uncarried
    )
    new = report.listed[("Concept", "label-derived", Fate.NEW)]
    assert new[0].source == "Concept[label-derived/subject 0-0 (revised)]"
    assert new[0].canonical_id is None

    # Nothing written anywhere.
    assert _registry_rows(registry) == before
    assert published.count_identified() == identified_before


def test_a_candidate_with_only_new_works_passes(tmp_path, published, connect_registry):
    works = [*_catalogue(), *_catalogue(20, first=WORKS)]
    with _candidate(tmp_path, works) as candidate:
        report = assess_impact(candidate, published, connect_registry, FullScope())
    assert report.breaches == []
    assert report.total(Fate.UNCARRIED) == 0
    assert report.counts[("Work", "sierra-system-number")][Fate.NEW] == 20
    assert report.counts[("Work", "sierra-system-number")][Fate.KEPT] == WORKS
    assert report.counts[("Concept", "label-derived")][Fate.NEW] == 20 * CONCEPTS_PER_WORK
    assert report.counts[("Concept", "label-derived")][Fate.KEPT] == WORKS * CONCEPTS_PER_WORK
    # A limit on new IDs, when set, is a breach too.
    strict = assess_impact(
        _candidate(tmp_path, works, "again.sqlite3"),
        published,
        connect_registry,
        IdsScope(("sierra-system-number/b100", "sierra-system-number/b101")),
        thresholds=ImpactThresholds(max_new=10),
    )
    assert strict.breaches == [
        "20 Concept label-derived ID(s) would be minted anew (limit 10, IDMINTER_IMPACT_MAX_NEW)"
    ]


def test_a_successor_inherits_and_its_predecessors_id_stays_carried(
    tmp_path, published, connect_registry
):
    successor = work(
        "folio-instance", "f0", items=("i0",), predecessor=("sierra-system-number", "b0")
    )
    successor.document["data"]["subjects"] = _catalogue(1)[0].document["data"]["subjects"]
    with _candidate(tmp_path, [successor]) as candidate:
        report = assess_impact(candidate, published, connect_registry, FullScope())
    assert report.counts[("Work", "folio-instance")][Fate.INHERITED] == 1
    assert report.total(Fate.UNCARRIED) == 0 and report.breaches == []


def test_thresholds_from_the_environment_and_bad_values_named():
    assert ImpactThresholds.from_env({}) == ImpactThresholds(max_uncarried=100, max_new=None)
    assert ImpactThresholds.from_env(
        {"IDMINTER_IMPACT_MAX_UNCARRIED": "none", "IDMINTER_IMPACT_MAX_NEW": "5"}
    ) == ImpactThresholds(max_uncarried=None, max_new=5)
    for bad in ("-1", "lots", "1.5"):
        with pytest.raises(InvalidSettingError, match=f"IDMINTER_IMPACT_MAX_NEW '{bad}'"):
            ImpactThresholds.from_env({"IDMINTER_IMPACT_MAX_NEW": bad})


# -- the command ----------------------------------------------------------------------------------


@pytest.fixture
def cli_env(registry_env, connect_registry, tmp_path, monkeypatch):
    path = embedded_store_holding(monkeypatch, tmp_path, _catalogue(10), connect_registry, 2_000)
    assert CliRunner().invoke(main, ["mint", "--full"]).exit_code == 0
    monkeypatch.setenv("IDMINTER_IMPACT_MAX_UNCARRIED", "5")
    return path


def test_the_impact_command_exits_1_over_the_threshold_and_0_within(cli_env, tmp_path):
    _candidate(tmp_path, _catalogue(10, suffix="!"), "rekeyed.sqlite3").close()
    _candidate(tmp_path, _catalogue(12), "grown.sqlite3").close()
    runner = CliRunner()

    blocked = runner.invoke(
        main, ["impact", "--candidate-store", str(tmp_path / "rekeyed.sqlite3"), "--full"]
    )
    assert blocked.exit_code == 1, blocked.output
    report = json.loads(blocked.stdout)
    assert report["totals"]["uncarried"] == 100 and report["totals"]["new"] == 100
    assert report["breaches"][0].startswith("100 Concept label-derived ID(s) published")
    [concepts] = [r for r in report["by_type_and_system"] if r["ontology_type"] == "Concept"]
    assert len(concepts["listed"]["uncarried"]) == 100

    passed = runner.invoke(
        main, ["impact", "--candidate-store", str(tmp_path / "grown.sqlite3"), "--full"]
    )
    assert passed.exit_code == 0, passed.output
    assert json.loads(passed.stdout)["totals"]["new"] == 2 + 2 + 2 * CONCEPTS_PER_WORK


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--candidate-store", "{tmp}/nowhere.sqlite3", "--full"], {}, "nowhere.sqlite3"),
        (["--full"], {}, "--candidate-store"),
        (
            ["--candidate-store", "{tmp}/c.sqlite3", "--candidate-index", "x", "--full"],
            {},
            "--candidate-index",
        ),
        (
            [
                "--candidate-store",
                "{tmp}/c.sqlite3",
                "--window-start",
                "soon",
                "--window-end",
                "2026-07-30T09:00:00Z",
            ],
            {},
            "soon",
        ),
        (
            ["--candidate-store", "{tmp}/c.sqlite3", "--full"],
            {"IDMINTER_IMPACT_MAX_NEW": "-3"},
            "IDMINTER_IMPACT_MAX_NEW '-3'",
        ),
        (["--candidate-index", "works-source-next", "--full"], {}, "ELASTICSEARCH_URL"),
    ],
)
def test_bad_input_is_one_error_line_naming_it(  # noqa: PLR0917 (fixtures and parameters)
    cli_env, tmp_path, monkeypatch, args, env, named
):
    _candidate(tmp_path, _catalogue(2), "c.sqlite3").close()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["impact", *(a.format(tmp=tmp_path) for a in args)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], lines
    assert not (tmp_path / "nowhere.sqlite3").exists()


# -- the blocking check before a reindex is promoted ---------------------------------------------


@dg.asset(deps=[candidate_impact])
def promoted_reindex() -> None:
    """Stands in for the promotion of a reindex (an alias swap), which must wait for the check."""


@pytest.mark.parametrize(("rekeyed", "promoted"), [(True, False), (False, True)])
def test_the_blocking_check_holds_back_the_promotion_of_a_re_keying_candidate(
    tmp_path, published, registry, rekeyed, promoted
):
    works = (
        _catalogue(suffix=" (revised)") if rekeyed else [*_catalogue(), *_catalogue(5, first=WORKS)]
    )
    _candidate(tmp_path, works).close()
    alerts_log = tmp_path / "alerts.log"
    result = dg.materialize(
        [candidate_impact, promoted_reindex],
        resources={
            "works_store": WorksStoreResource(sqlite_path=str(published.path)),
            "registry_database": RegistryDatabase.from_settings(registry),
            "impact_candidate": ImpactCandidateResource(
                sqlite_path=str(tmp_path / "candidate.sqlite3")
            ),
            "alerts": AlertsResource(log_file=str(alerts_log)),
        },
        raise_on_error=False,
    )
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "identity_impact_within_thresholds"
    assert check.passed is not rekeyed
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert ("promoted_reindex" in materialized) is promoted
    [figures] = result.asset_materializations_for_node("candidate_impact")
    assert figures.metadata["ids_uncarried"].value == (1_000 if rekeyed else 0)
    if rekeyed:
        assert "1,000 Concept label-derived ID(s)" in check.description
        listed = check.metadata["ids"].value
        [concepts] = [r for r in listed if r["ontology_type"] == "Concept"]
        assert len(concepts["listed"]["uncarried"]) == 100
        assert "Identity impact over threshold: 1 finding(s)" in alerts_log.read_text()
    else:
        assert not alerts_log.exists()
