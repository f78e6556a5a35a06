"""The Step Functions interface: event shapes in, result shape out, against the real registry."""

import pytest
from works_helpers import fill_pool, work

from idminter_pipeline.errors import InvalidInputError
from idminter_pipeline.lambda_handler import handler, parse_event
from idminter_pipeline.works.sample_data import generate_works
from idminter_pipeline.works.stores import FullScope, IdsScope, SqliteWorksStore, WindowScope


@pytest.fixture
def lambda_env(registry_env, connect_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKS_STORE_PATH", str(tmp_path / "works.sqlite3"))
    monkeypatch.setenv("IDMINTER_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)
    fill_pool(connect_registry, 2_000)
    store = SqliteWorksStore(tmp_path / "works.sqlite3")
    store.put_source(
        [
            work("sierra-system-number", "b1161044x", indexed_at="2026-07-30T10:00:00.000Z"),
            work(
                "axiell-collections-id",
                "12345",
                indexed_at="2026-07-30T10:00:05.000Z",
                predecessor=("sierra-system-number", "b1161044x"),
            ),
            work("sierra-system-number", "b2", indexed_at="2026-07-30T10:15:00.000Z"),
        ]
    )
    yield store
    store.close()


def test_scala_shaped_event_returns_processed_identifiers_and_job_id(lambda_env):
    event = {
        "sourceIdentifiers": ["sierra-system-number/b1161044x", "axiell-collections-id/12345"],
        "jobId": "2026-01-29T10:30:00Z",
    }
    assert handler(event, None) == {
        "processedIdentifiers": ["sierra-system-number/b1161044x", "axiell-collections-id/12345"],
        "jobId": "2026-01-29T10:30:00Z",
        "failures": [],
    }
    assert lambda_env.count_identified() == 1  # the successor inherited its predecessor's ID


def test_snake_case_and_failures_are_reported(lambda_env):
    result = handler(
        {
            "source_identifiers": ["sierra-system-number/b2", "sierra-system-number/nope"],
            "job_id": "j-7",
        },
        None,
    )
    assert result["processedIdentifiers"] == ["sierra-system-number/b2"]
    assert result["jobId"] == "j-7"
    assert result["failures"] == [
        {
            "sourceIdentifier": "sierra-system-number/nope",
            "stage": "read",
            "detail": f"not found in sqlite:{lambda_env.path}",
        }
    ]


def test_window_and_full_scopes(lambda_env):
    result = handler(
        {"window": {"startTime": "2026-07-30T10:00:00Z", "endTime": "2026-07-30T10:00:05Z"}}, None
    )
    assert result["processedIdentifiers"] == [
        "sierra-system-number/b1161044x",
        "axiell-collections-id/12345",
    ]
    assert result["jobId"] is None
    result = handler({"full": True, "jobId": "everything"}, None)
    assert len(result["processedIdentifiers"]) == 3


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, "names no scope"),
        ({"jobId": "x"}, "names no scope"),
        ({"sourceIdentifiers": []}, "sourceIdentifiers is empty"),
        ({"sourceIdentifiers": "sierra-system-number/b1"}, "must be an array, got string"),
        ({"sourceIdentifiers": ["a/b"], "full": True}, "mixes scopes (sourceIdentifiers, full)"),
        (
            {
                "window": {"startTime": "2026-07-30T10:00:00Z", "endTime": "2026-07-30T11:00:00Z"},
                "full": True,
            },
            "mixes scopes (window, full)",
        ),
        ({"sourceIdentifiers": ["a/b"], "source_identifiers": ["a/b"]}, "not both"),
        ({"window": {"startTime": "2026-07-30T10:00:00Z"}}, "needs both startTime and endTime"),
        ({"window": {"startTime": "tomorrow", "endTime": "2026-07-30T11:00:00Z"}}, "'tomorrow'"),
        ({"full": "yes"}, "full must be true, got 'yes'"),
        ({"sourceIdentifiers": ["b1161044x"]}, "'b1161044x'"),
        ({"sourceIdentifiers": ["a/b"], "jobId": 5}, "jobId must be a non-empty string"),
        (["a/b"], "must be a JSON object, got array"),
    ],
)
def test_bad_events_are_rejected_naming_the_problem(event, message):
    with pytest.raises(InvalidInputError) as raised:
        parse_event(event)
    assert message in str(raised.value)


def test_parsed_scopes():
    assert parse_event({"sourceIdentifiers": ["sierra-system-number/b1"]}) == (
        IdsScope(("Work[sierra-system-number/b1]",)),
        None,
    )
    scope, job = parse_event(
        {
            "window": {"start_time": "2026-07-30T10:00:00Z", "end_time": "2026-07-30T10:15:00Z"},
            "jobId": "j",
        }
    )
    assert isinstance(scope, WindowScope) and scope.end_inclusive and job == "j"
    assert parse_event({"full": True, "full_ignored": 1})[0] == FullScope()
    assert parse_event({"full": False, "sourceIdentifiers": ["a/b"]})[0] == IdsScope(("a/b",))


def test_pool_exhaustion_raises_so_step_functions_retries(registry_env, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKS_STORE_PATH", str(tmp_path / "w.sqlite3"))
    monkeypatch.setenv("IDMINTER_LOCAL_DIR", str(tmp_path / "local"))
    with SqliteWorksStore(tmp_path / "w.sqlite3") as store:
        store.put_source(generate_works(3))
    with pytest.raises(Exception, match="free-ID pool exhausted"):
        handler({"full": True}, None)


def test_a_full_event_with_a_job_id_resumes_after_the_last_written_batch(
    lambda_env, connect_registry
):
    """An invocation that died (a Lambda timeout) after its first batch: invoked again with the
    same jobId, it goes on from the second batch."""
    from idminter_pipeline.registry.minting import Minter  # noqa: PLC0415
    from idminter_pipeline.works.checkpoints import FullRunCheckpoints  # noqa: PLC0415
    from idminter_pipeline.works.pipeline import WorksPipeline  # noqa: PLC0415

    class DiesAtSecondWrite(SqliteWorksStore):
        writes = 0

        def write_identified(self, works):
            self.writes += 1
            if self.writes == 2:
                raise TimeoutError("the Lambda timed out")
            return super().write_identified(works)

    with (
        DiesAtSecondWrite(lambda_env.path) as dying,
        Minter(connect_registry) as minter,
        FullRunCheckpoints(connect_registry) as checkpoints,
        pytest.raises(TimeoutError),
    ):
        WorksPipeline(dying, minter, batch_size=2).run(
            FullScope(), job_id="sf-full-1", checkpoints=checkpoints
        )
    result = handler({"full": True, "jobId": "sf-full-1"}, None)
    assert result["processedIdentifiers"] == ["sierra-system-number/b2"]
    assert result["failures"] == []
    assert lambda_env.count_identified() == 2  # b1161044x and its successor share one document
