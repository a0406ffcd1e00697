"""Study summaries from every shared FHIR fixture (DSTU2 to R5) and from edge cases."""

from __future__ import annotations

import pytest

from app.dicom import normalize_study_uid
from app.fhir.imaging import newest_first, summarize
from tests.support import UID_A, fixture_json, own_fixture

UID_EXAMPLE = "2.16.124.113543.6003.1154777499.30246.19789.3503430045"
UID_EXAMPLE_XR = "2.16.124.113543.6003.1154777499.30246.19789.3503430046"


@pytest.mark.parametrize("name, uid, started, modalities, accession, series, instances", [
    ("fhir-dstu2-imagingstudy-example.json", UID_EXAMPLE, "2011-01-01T11:01:20+03:00", ("CT",), None, 1, 1),
    ("fhir-r3-ImagingStudy-example.json", UID_EXAMPLE, "2011-01-01T11:01:20+03:00", ("CT",), None, 1, 1),
    ("fhir-r3-ImagingStudy-example-xr.json", UID_EXAMPLE_XR, "2017-01-01T11:01:20+03:00", ("DX",), "W12342398", 1, 2),
    ("fhir-r4-ImagingStudy-example.json", UID_EXAMPLE, "2011-01-01T11:01:20+03:00", ("CT",), None, 1, 1),
    ("fhir-r4-ImagingStudy-example-xr.json", UID_EXAMPLE_XR, "2017-01-01T11:01:20+03:00", ("DX",), "W12342398", 1, 2),
    ("fhir-r4b-ImagingStudy-example.json", UID_EXAMPLE, "2011-01-01T11:01:20+03:00", ("CT",), None, 1, 1),
    ("fhir-r4b-ImagingStudy-example-xr.json", UID_EXAMPLE_XR, "2017-01-01T11:01:20+03:00", ("DX",), "W12342398", 1, 2),
    ("fhir-r5-ImagingStudy-example.json", UID_EXAMPLE, "2011-01-01T11:01:20+03:00", ("CT",), None, 1, 1),
    ("fhir-r5-ImagingStudy-example-xr.json", UID_EXAMPLE_XR, "2017-01-01T11:01:20+03:00", ("DX",), "W12342398", 1, 2),
])
def test_every_shared_fixture(name, uid, started, modalities, accession, series, instances):
    summary = summarize(fixture_json(name))
    assert summary.study_instance_uid == uid
    assert summary.viewable
    assert summary.started == started
    assert summary.started_display == started[:10] + " " + started[11:16]
    assert summary.modalities == modalities
    assert summary.accession_number == accession
    assert (summary.number_of_series, summary.number_of_instances) == (series, instances)


@pytest.mark.parametrize("name, uid, started_display, modalities, accession, description, series, instances", [
    ("imaging-dstu2.json", "2.25.1001", "2012-03-04 05:06", ("MR",), "DSTU2-ACC", "MR Knee Left", 2, 5),
    ("imaging-stu3.json", "2.25.1002", "2013-04-05 06:07", ("US",), "STU3-ACC", "US Abdomen", 1, 2),
    ("imaging-r4.json", "2.25.1003", "2014-05-06 07:08", ("CT",), "R4-ACC", "CT Chest Axial", 1, 40),
    ("imaging-r5.json", "2.25.1004", "2015-06-07 08:09", ("DX",), "R5-ACC", "XR Wrist 3 Views", 1, 3),
])
def test_every_fhir_version_shape(name, uid, started_display, modalities, accession, description, series, instances):
    """The app's own examples: DSTU2 ``uid``/``accession``/``modalityList``, STU3 typed accession and
    ``procedureCode``, R4 identifiers and Coding modality, R5 CodeableConcept modality and ``basedOn`` accession."""
    summary = summarize(own_fixture(name))
    assert (summary.study_instance_uid, summary.started_display, summary.modalities, summary.accession_number,
            summary.description, summary.number_of_series, summary.number_of_instances) == \
        (uid, started_display, modalities, accession, description, series, instances)
    assert summary.viewable


def test_xr_description_comes_from_procedure_or_series():
    assert summarize(fixture_json("fhir-r4-ImagingStudy-example-xr.json")).description == "XR Wrist 3+ Views"
    assert summarize(fixture_json("fhir-r3-ImagingStudy-example-xr.json")).description == "XR Wrist 3+ Views"
    assert summarize(fixture_json("fhir-r4-ImagingStudy-example.json")).description == "CT Surview 180"


def test_identifier_order_prefers_dicom_uid_system_over_accession_first():
    resource = {"resourceType": "ImagingStudy", "id": "x", "identifier": [
        {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
         "value": "ACC-77"},
        {"system": "urn:dicom:uid", "value": f"urn:oid:{UID_A}"}]}
    summary = summarize(resource)
    assert summary.study_instance_uid == UID_A
    assert summary.accession_number == "ACC-77"


def test_uid_fallbacks_in_order():
    oid_value = {"identifier": [{"system": "http://other", "value": "X-1"}, {"value": f"urn:oid:{UID_A}"}]}
    typed = {"identifier": [{"type": {"coding": [{"code": "0020000D"}]}, "value": UID_A}]}
    legacy = {"uid": f"urn:oid:{UID_A}"}
    for resource in (oid_value, typed, legacy):
        assert summarize({"resourceType": "ImagingStudy", **resource}).study_instance_uid == UID_A


@pytest.mark.parametrize("value, expected", [
    (f"urn:oid:{UID_A}", UID_A), (UID_A, UID_A), ("URN:OID:1.2.3", "1.2.3"),
    ("1.2.3.", None), ("1..2", None), ("2.25.abc", None), ("1" * 65, None), ("1." + "2" * 62, "1." + "2" * 62),
    ("", None), (None, None), ("1.2.3<script>", None)])
def test_normalize_study_uid(value, expected):
    assert normalize_study_uid(value) == expected


def test_missing_uid_and_entered_in_error_disable_the_viewer_with_reason():
    no_uid = summarize({"resourceType": "ImagingStudy", "id": "n", "status": "available"})
    assert not no_uid.viewable and no_uid.viewer_problem == "No Study Instance UID recorded for this study"
    eie = summarize({"resourceType": "ImagingStudy", "id": "e", "status": "entered-in-error",
                     "identifier": [{"system": "urn:dicom:uid", "value": UID_A}]})
    assert not eie.viewable and eie.status_flag == "Entered in error"
    cancelled = summarize({"resourceType": "ImagingStudy", "id": "c", "status": "cancelled",
                           "identifier": [{"system": "urn:dicom:uid", "value": UID_A}]})
    assert cancelled.viewable and cancelled.status_flag == "Cancelled"


def test_newest_first_handles_timezones_partial_dates_and_missing():
    studies = [summarize({"resourceType": "ImagingStudy", "id": i, "started": s}) for i, s in [
        ("old", "2019"), ("none", None), ("tz", "2024-01-01T01:00:00+03:00"), ("utc", "2023-12-31T23:00:00Z"),
        ("month", "2024-02")]]
    assert [s.id for s in newest_first(studies)] == ["month", "utc", "tz", "old", "none"]  # 01:00+03:00 is 22:00Z


def test_odd_data_never_raises():
    odd = {"resourceType": "ImagingStudy", "identifier": ["x", {"value": 5}], "modality": "CT", "series": [None, 3],
           "numberOfSeries": "2", "started": 12, "basedOn": [None], "procedureCode": [1]}
    summary = summarize(odd)
    assert summary.study_instance_uid is None and summary.number_of_series is None


def test_summary_is_a_complete_study_summary():
    """summarize fills the instance without the dataclass constructor: every field, equal to a constructed one."""
    from dataclasses import asdict

    from app.fhir.imaging import SUMMARY_FIELDS, StudySummary

    summary = summarize(fixture_json("fhir-r4-ImagingStudy-example.json"))
    assert tuple(summary.__dict__) == SUMMARY_FIELDS
    assert summary == StudySummary(**asdict(summary))
    assert hash(summary) == hash(StudySummary(**asdict(summary)))


def _series(uid, modality, number, instances):
    return {"uid": uid, "modality": {"code": modality} if modality else None, "number": number,
            "instance": [{"uid": u, "number": n} for u, n in instances]}


@pytest.mark.parametrize("series, expected", [
    # the first image series by number (unnumbered last), its middle instance by number
    ([_series("1.3", "CT", None, [("1.3.1", 1)]), _series("1.2", "CT", 2, [("1.2.3", 3), ("1.2.1", 1), ("1.2.2", 2)]),
      _series("1.1", "SR", 1, [("1.1.1", 1)])], ("1.2", "1.2.2")),
    # an invalid series UID, then one without valid instances, are passed over
    ([_series("1.x", "CT", 1, [("1.4.1", 1)]), _series("1.5", "MR", 2, [("bad", 1), (7, 2)]),
      _series("urn:oid:1.6", "MR", 3, [(" 1.6.2 ", 2), ("1.6.1", None), ("1.6..3", 3)])], ("1.6", "1.6.2")),
    # a UID longer than 64 characters is not one
    ([_series("1." + "2" * 63, "CT", 1, [("1.7.1", 1)])], None),
    ([_series("1.8", "ko", 1, [("1.8.1", 1)])], None),
])
def test_thumbnail_instance_matches_representative_instance(series, expected):
    from app.dicom import representative_instance
    from app.fhir.imaging import series_sketches

    resource = {"resourceType": "ImagingStudy", "series": series}
    assert representative_instance(series_sketches(resource)) == expected
    summary = summarize(resource)
    assert (summary.thumbnail_series_uid, summary.thumbnail_instance_uid) == (expected or (None, None))


def test_with_changes_is_replace():
    from dataclasses import replace

    summary = summarize(fixture_json("fhir-r4-ImagingStudy-example.json"))
    changes = {"endpoint_refs": (), "iid_address": "https://viewer.example/iid", "viewer_base_url": None}
    changed = summary.with_changes(changes)
    assert changed == replace(summary, **changes) and tuple(changed.__dict__) == tuple(summary.__dict__)
    assert summary.iid_address is None  # the original is left as it was
    with pytest.raises(TypeError):
        summary.with_changes({"no_such_field": 1})
