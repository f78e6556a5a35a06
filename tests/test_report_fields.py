"""Reports read as plain data off their dataclass fields (`core.reports.field_values`)."""

from __future__ import annotations

import json

from idminter_pipeline.core.reports import field_values
from idminter_pipeline.works.audit import AuditedWork, AuditReport, Outcome
from idminter_pipeline.works.documents import Stage
from idminter_pipeline.works.restore import Conflict, RecoveryReport
from idminter_pipeline.works.run_summary import WorkFailure
from idminter_pipeline.works.sweeper import SweepReport


def test_fields_come_in_declaration_order_renamed_and_left_out_as_asked():
    report = RecoveryReport(store="sqlite", applied=False, mappings_restored=3, ids_reassigned=2)
    report.conflict_examples.append(Conflict("Work[a/b]", "abcdefgh", "maps it to zzzzzzzz"))
    data = report.as_dict()
    assert list(data) == [
        "store",
        "applied",
        "documents",
        "mappings_published",
        "mappings_registered",
        "mappings_to_restore",
        "ids_to_reassign",
        "inheritances_to_restore",
        "conflicts",
        "unreadable_documents",
        "restored_examples",
        "conflict_examples",
    ]
    assert (data["mappings_to_restore"], data["ids_to_reassign"]) == (3, 2)
    # A nested dataclass is read by its fields too.
    assert data["conflict_examples"] == [
        {"source": "Work[a/b]", "published_id": "abcdefgh", "registry": "maps it to zzzzzzzz"}
    ]
    applied = RecoveryReport(store="sqlite", applied=True, mappings_restored=3).as_dict()
    assert applied["mappings_restored"] == 3 and "mappings_to_restore" not in applied
    assert next(iter(field_values(report, leave_out={"store", "applied"}))) == "documents"


def test_enum_members_and_objects_with_their_own_as_dict_become_plain_json():
    work = AuditedWork("Work[a/b]", Outcome.MISSING, "no document")
    assert work.as_dict() == {
        "work_id": "Work[a/b]",
        "outcome": "missing",
        "detail": "no document",
        "canonical_id": None,
    }
    assert type(work.as_dict()["outcome"]) is str
    report = SweepReport(AuditReport(scope="full", store="sqlite"))
    report.failures.append(WorkFailure("Work[a/b]", Stage.EXTRACT, "bad"))
    data = report.as_dict()
    assert data["failures"] == [
        {"sourceIdentifier": "Work[a/b]", "stage": "extract", "detail": "bad"}
    ]
    json.dumps(data)  # plain data throughout
