"""Every error that can leave the minter Lambda is a decision of the state machine, by the exact
name Lambda reports as `errorType` (Step Functions matches names, never subclasses)."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pymysql
import pytest
from state_machine_harness import lambda_response, minter_state_machine, state_machine_definition
from works_helpers import fill_pool, use_embedded_store, work

import idminter_pipeline
from idminter_pipeline.aws_lambda import dispatch
from idminter_pipeline.aws_lambda import handler as lambda_handler
from idminter_pipeline.aws_lambda.outcomes import (
    REPORTED_ERROR_NAMES,
    UnexpectedError,
    reported_class,
)
from idminter_pipeline.core import errors
from idminter_pipeline.works.stores import SqliteWorksStore

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:idminter-minter"
# What Lambda and Step Functions themselves report for an invocation: service errors, a function
# that timed out, ran out of memory or whose runtime exited, and a task past its TimeoutSeconds.
SERVICE_ERROR_NAMES = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.TooManyRequestsException",
    "Lambda.Unknown",
    "Sandbox.Timedout",
    "Runtime.ExitError",
    "Runtime.OutOfMemory",
    "States.Timeout",
}
# Caught by name without retry: the request is bad, a retry would give the same answer.
DELIBERATELY_NOT_RETRIED = {"InvalidInputError"}


def _task() -> dict:
    return state_machine_definition(ARN)["States"]["MintBatches"]["ItemProcessor"]["States"][
        "MintBatch"
    ]


def _retried() -> set[str]:
    return {name for rule in _task()["Retry"] for name in rule["ErrorEquals"]}


def _caught_by_name() -> set[str]:
    return {n for rule in _task()["Catch"] for n in rule["ErrorEquals"] if n != "States.ALL"}


def _every_package_error() -> set[type[BaseException]]:
    for module in pkgutil.walk_packages(idminter_pipeline.__path__, "idminter_pipeline."):
        if ".defs" not in module.name:  # Dagster definitions raise nothing the Lambda runs
            importlib.import_module(module.name)
    found: set[type[BaseException]] = set()
    pending: list[type[BaseException]] = [errors.IdMinterError]
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_name_the_handler_reports_is_retried_or_caught_by_name():
    decided = _retried() | _caught_by_name()
    assert decided >= REPORTED_ERROR_NAMES, REPORTED_ERROR_NAMES - decided
    assert _caught_by_name() == DELIBERATELY_NOT_RETRIED
    assert not DELIBERATELY_NOT_RETRIED & _retried()


def test_lambdas_own_errors_and_timeouts_are_named_by_clauses():
    assert _retried() >= SERVICE_ERROR_NAMES, SERVICE_ERROR_NAMES - _retried()
    assert _task()["TimeoutSeconds"] > 300  # past the function's own timeout
    # Every retried name is one something really reports: no dead clause.
    assert _retried() <= REPORTED_ERROR_NAMES | SERVICE_ERROR_NAMES


@pytest.mark.parametrize(
    "error_type",
    sorted(
        _every_package_error() | {KeyError, TimeoutError, pymysql.err.OperationalError},
        key=lambda cls: cls.__name__,
    ),
    ids=lambda cls: cls.__name__,
)
def test_each_exception_class_reaches_step_functions_under_a_decided_name(error_type, monkeypatch):
    """Raised from inside the handler, as Lambda's Python runtime reports it."""

    def raise_it(event):
        error = error_type.__new__(error_type)
        Exception.__init__(error, f"a {error_type.__name__}")
        raise error

    monkeypatch.setattr(dispatch, "dispatch", raise_it)
    payload, errored = lambda_response(lambda event: lambda_handler.handler(event, None), {})
    assert errored
    reported = json.loads(payload)
    assert reported["errorType"] == reported_class(error_type).__name__
    assert reported["errorType"] in _retried() | _caught_by_name()
    assert error_type.__name__ in reported["errorMessage"] or reported["errorType"] in (
        error_type.__name__,
        *(cls.__name__ for cls in error_type.__mro__),
    )


def test_outage_errors_are_reported_as_the_name_the_state_machine_retries():
    # The defect: RegistryOutageError and RegistryUnreachableError were reported as themselves,
    # which no clause named, so an outage failed the whole execution at once.
    for error_type in (errors.RegistryOutageError, errors.RegistryUnreachableError):
        assert reported_class(error_type).__name__ in _retried()
    assert reported_class(ValueError) is UnexpectedError


@pytest.fixture
def works_store(registry_env, connect_registry, tmp_path, monkeypatch):
    store_path = use_embedded_store(monkeypatch, tmp_path)
    fill_pool(connect_registry, 100)
    store = SqliteWorksStore(store_path)
    store.put_source([work("mets", f"b{n}") for n in range(4)])
    yield store
    store.close()


# States.Timeout (the task's own TimeoutSeconds) is Step Functions' and cannot come from the
# function; it shares the clause of these two, which are checked by name above.
@pytest.mark.slow(seconds=10)
@pytest.mark.parametrize("name", ["Lambda.Unknown", "Sandbox.Timedout"])
def test_a_batch_that_keeps_timing_out_fails_alone(works_store, monkeypatch, name):
    """A timed-out function is retried once; a batch that always times out is caught, the other
    batches are written, and the execution fails naming it."""
    timed_out = type(name, (Exception,), {})

    def serve(event):
        if "mets/b0" in event["sourceIdentifiers"]:
            raise timed_out("Task timed out after 300.00 seconds")
        return lambda_handler.handler(event, None)

    with minter_state_machine(monkeypatch, function=serve) as machine:
        execution = machine.execute(
            {"jobId": "j", "batches": [["mets/b0"], ["mets/b1", "mets/b2"]]}
        )
    assert execution.status == "FAILED" and execution.error == "BatchesFailed"
    assert execution.invocations == 3  # the timed-out batch twice, the other once
    assert works_store.count_identified() == 2


def test_a_bad_request_is_caught_without_retry(works_store, monkeypatch):
    with minter_state_machine(monkeypatch) as machine:
        execution = machine.execute({"jobId": "j", "batches": [["not an identifier"], ["mets/b3"]]})
    assert execution.status == "FAILED" and execution.error == "BatchesFailed"
    assert execution.invocations == 2  # no retry of the bad one
    assert works_store.count_identified() == 1
