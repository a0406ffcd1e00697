"""Honest demo data: every demo study's modality, frames, description and body part match the DICOM it serves."""

from __future__ import annotations

import re

import pydicom
import pytest
from pydicom.data import get_testdata_file

from sandbox.demo_studies import DICOM_STUDIES, PRIOR_STUDIES
from sandbox.reports import REPORTS

#: what the pixels of each bundled file show (looked at), as words the description must carry, and regions
#: it must not claim
ANATOMY = {
    "CT_small.dcm": ("Chest", ("Head", "Brain", "Abdomen")),
    "MR_small.dcm": ("anatomy not identified", ("Brain", "Head", "Abdomen", "Knee")),
    "examples_rgb_color.dcm": ("Lymph node", ("Abdomen", "gallbladder")),
    "JPGExtended.dcm": ("Whole Body Bone", ()),
    "examples_overlay.dcm": ("Abdomen", ("^",)),
    "examples_ybr_color.dcm": ("Echocardiogram", ()),
    "examples_palette.dcm": ("Obstetric", ("Carotid",)),
    "rtdose.dcm": ("dose", ()),
    "693_J2KI.dcm": ("Head", ("Abdomen", "Pelvis", "Chest", "with contrast")),
}
REGIONS = ("Head", "Brain", "Chest", "Abdomen", "Pelvis", "Neck", "Knee", "Carotid")
DEMO_IDS = [row[0] for row in DICOM_STUDIES] + [row[0] for row in PRIOR_STUDIES]


def _dataset(instance) -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file(instance.source_file), stop_before_pixels=True)


@pytest.mark.parametrize("study_id", DEMO_IDS)
def test_modality_frames_and_description_match_the_served_dicom(sandbox_client, sandbox_app, study_id):
    study = sandbox_app.extensions["sandbox"].dataset.study(study_id)
    resource = study.resource
    description = resource["description"]
    page = sandbox_client.get("/IHEInvokeImageDisplay", query_string={
        "requestType": "STUDY", "studyUID": study.study_instance_uid, "viewerType": "IHE_BIR"}).get_data(as_text=True)
    most_frames, viewer_counts = 1, []
    for series, fhir_series in zip(study.series, resource["series"]):
        viewer_counts.append(sum(i.frames for i in series.instances))
        for instance in series.instances:
            ds = _dataset(instance)
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            most_frames = max(most_frames, frames)
            assert fhir_series["modality"]["code"] == ds.Modality == series.modality
            assert instance.frames == frames
            served = f"/IHEInvokeImageDisplay/instances/{instance.sop_instance_uid}/frames/"
            assert sandbox_client.get(f"{served}{frames}.png").status_code == 200
            assert sandbox_client.get(f"{served}{frames + 1}.png").status_code == 404
            if ds.get("BodyPartExamined"):
                assert fhir_series.get("bodySite", {}).get("code", ds.BodyPartExamined) == ds.BodyPartExamined
            words, forbidden = ANATOMY[instance.source_file if instance.source_file in ANATOMY else "JPGExtended.dcm"]
            assert words.lower() in description.lower(), (study_id, description)
            for word in forbidden:
                assert word.lower() not in description.lower(), (study_id, description)
        assert fhir_series["numberOfInstances"] == len(series.instances)
    # a multi-frame study says how many frames (ImagingStudy counts instances) and its viewer plays them
    assert description.endswith(f"({most_frames} frames)") == (most_frames > 1), description
    assert re.findall(r'class="counter">1 / (\d+)<', page) == [str(n) for n in viewer_counts]
    assert page.count('class="play"') == sum(n > 1 for n in viewer_counts)
    claimed = {r for r in REGIONS if r.lower() in description.lower()}
    assert len(claimed) <= 1, (study_id, description)


def test_each_prior_has_a_later_study_of_the_same_modality_and_says_its_pixels_are_reused(sandbox_app):
    dataset = sandbox_app.extensions["sandbox"].dataset
    for prior_id, *_ in PRIOR_STUDIES:
        prior = dataset.study(prior_id)
        later = [s for s in dataset.patient(prior.patient_id).studies
                 if s.id != prior_id and s.started > prior.started
                 and {x.modality for x in s.series} == {x.modality for x in prior.series}
                 and s.description == prior.description]
        assert later, prior_id
        assert all("demo prior" in s.description for s in prior.series)
        assert {i.sop_instance_uid for s in prior.series for i in s.instances}.isdisjoint(
            {i.sop_instance_uid for s in later[0].series for i in s.instances})


def test_reports_cover_most_demo_studies_with_every_status_and_form(sandbox_client, sandbox_app):
    dataset = sandbox_app.extensions["sandbox"].dataset
    reported = {row[1] for row in REPORTS}
    assert reported <= set(DEMO_IDS)
    assert len(reported) >= 0.75 * len(DEMO_IDS), sorted(set(DEMO_IDS) - reported)
    assert {row[3] for row in REPORTS} >= {"final", "preliminary", "amended"}
    assert {row[7] for row in REPORTS} >= {"text/plain", "text/html", "application/pdf"}
    for report_id, study_id, accession, *_ in REPORTS:
        study = dataset.study(study_id)
        assert study.accession_number == accession, report_id


@pytest.mark.parametrize("patient_id", ["pt-1003", "pt-1005"])
def test_generated_histories_show_matching_pixels_or_say_the_image_is_a_placeholder(sandbox_app, patient_id):
    from sandbox.history import PLACEHOLDER_NOTE, REAL_PIXELS
    studies = sandbox_app.extensions["sandbox"].dataset.patient(patient_id).studies
    honest = placeholders = 0
    for study in studies:
        for series in study.series:
            sources = {i.source_file for i in series.instances}
            real = REAL_PIXELS.get((series.modality, series.body_part))
            if real is not None:
                assert sources == {real}, (study.id, series.description, sources)
                assert PLACEHOLDER_NOTE not in series.description
                honest += 1
            else:
                assert series.description.endswith(PLACEHOLDER_NOTE), (study.id, series.description)
                placeholders += 1
            for instance in series.instances:
                assert instance.frames == int(_dataset(instance).get("NumberOfFrames", 1) or 1)
    assert honest and placeholders
