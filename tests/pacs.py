"""A real PACS for the tests: Debian's Orthanc with its DICOMweb plugin, on loopback.

``running_orthanc()`` (context manager) and the session fixture ``orthanc_pacs``
start ``Orthanc`` with a generated JSON configuration: HTTP on a free port,
``RemoteAccessAllowed: false`` (Orthanc 1.10 has no HTTP bind-address option;
this refuses every non-loopback client), DICOM (DIMSE) server disabled,
storage and index in a temporary folder, the DICOMweb plugin loaded from the
Debian package with ``Root`` ``/dicom-web/``, HTTP basic authentication with a
generated user and password. It waits until ``/system`` answers, uploads the
sandbox's pydicom-file studies (pt-1001 and pt-1002: 9 studies, 10 instances)
with ``POST /instances`` — as the sandbox PACS holds them, i.e. PatientID = MRN,
IssuerOfPatientID = the MRN authority (:mod:`sandbox.dicom_instances`) — and
yields an :class:`OrthancPacs`. The process is stopped on exit.

Without the ``Orthanc`` binary or the plugin the fixture skips with a one-line
reason, except under ``CI=true``, where it fails (CI installs both).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from tests.environment import require
from tests.processes import stop
import requests

from sandbox.dataset import Dataset
from sandbox.demo_studies import DICOM_STUDIES
from sandbox.dicom_instances import instance_file_bytes

PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)
INSTALL_HINT = "apt-get install orthanc orthanc-dicomweb"
STARTUP_TIMEOUT = 30.0


#: Study Instance UIDs of pt-1001's studies with pixels, as uploaded to Orthanc (sandbox/README.md)
PT_1001_UIDS = frozenset({
    "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322",
    "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457",
    "1.3.6.1.4.1.5962.1.2.13.20040826185059.5457",
    "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457",
    "1.2.124.113532.10.122.1.203.20051130.122937.2950157",
    "1.2.840.114340.3.8251017118051.1.20160503.120850.2171",
    "1.3.46.670589.14.1000.210.4.199999.20110525182825.1.0",
    "1.2.999.999.99.9.9999.8888",
})


class PacsUnavailable(RuntimeError):
    """Orthanc or its DICOMweb plugin is not installed."""


@dataclass
class OrthancPacs:
    """A running Orthanc.

    ``url``: REST root (``http://127.0.0.1:<port>``); ``dicomweb_url``: DICOMweb
    base (``url + "/dicom-web"``); ``username``/``password`` (HTTP basic);
    ``studies``: Study Instance UID -> sandbox ImagingStudy id of each upload;
    ``instances``: SOP Instance UID -> ``(study uid, series uid)``;
    ``patient_ids``: sandbox patient id -> PatientID (MRN) as stored;
    ``version``/``plugin_version``: as ``/system`` and ``/plugins/dicom-web`` report.
    """

    url: str
    username: str
    password: str
    studies: dict[str, str] = field(default_factory=dict)
    instances: dict[str, tuple[str, str]] = field(default_factory=dict)
    patient_ids: dict[str, str] = field(default_factory=dict)
    version: str = ""
    plugin_version: str = ""

    @property
    def dicomweb_url(self) -> str:
        return self.url + "/dicom-web"

    @property
    def auth(self) -> tuple[str, str]:
        return self.username, self.password

    def session(self) -> requests.Session:
        """A requests session with the basic credentials set."""
        session = requests.Session()
        session.auth = self.auth
        return session


def find_orthanc() -> tuple[str, str]:
    """``(binary, plugin)`` paths; raises :class:`PacsUnavailable` naming what is missing."""
    binary = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if os.access("/usr/sbin/Orthanc", os.X_OK) else None)
    plugin = next((p for p in PLUGIN_CANDIDATES if os.path.exists(p)), None)
    missing = [name for name, path in (("Orthanc binary", binary), ("Orthanc DICOMweb plugin", plugin)) if not path]
    if missing:
        raise PacsUnavailable(f"{' and '.join(missing)} not found ({INSTALL_HINT})")
    return binary, plugin


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def orthanc_config(folder: Path, port: int, plugin: str, username: str, password: str) -> dict:
    """The generated Orthanc configuration (JSON-ready)."""
    return {
        "Name": "sandbox-test-pacs",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpServerEnabled": True,
        "HttpPort": port,
        "RemoteAccessAllowed": False,
        "DicomServerEnabled": False,
        "DicomPort": free_port(),
        "AuthenticationEnabled": True,
        "RegisteredUsers": {username: password},
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Ssl": False},
        "HttpThreadsCount": 4,
        "ConcurrentJobs": 1,
        "SaveJobs": False,
        "StorageCompression": False,
        "HttpDescribeErrors": True,
    }


def _wait_ready(pacs: OrthancPacs, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            response = requests.get(pacs.url + "/system", auth=pacs.auth, timeout=2)
            if response.status_code == 200:
                pacs.version = response.json().get("Version", "")
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"Orthanc did not answer /system within {STARTUP_TIMEOUT}s: {log.read_text(errors='replace')[-2000:]}")


def upload_sandbox_studies(pacs: OrthancPacs, dataset: Dataset | None = None) -> None:
    """POST every instance of the pydicom-file studies (pt-1001, pt-1002) to ``/instances``."""
    dataset = dataset or Dataset()
    session = pacs.session()
    for study_id, patient_id, *_ in DICOM_STUDIES:
        study = dataset.study(study_id)
        patient = dataset.patient(patient_id)
        pacs.patient_ids[patient_id] = patient.mrn
        for series in study.series:
            for instance in series.instances:
                body = instance_file_bytes(patient, study, series, instance)
                response = session.post(pacs.url + "/instances", data=body,
                                        headers={"Content-Type": "application/dicom"}, timeout=30)
                response.raise_for_status()
                if response.json().get("Status") not in ("Success", "AlreadyStored"):
                    raise RuntimeError(f"Orthanc refused {instance.source_file}: {response.text}")
                pacs.instances[instance.sop_instance_uid] = (study.study_instance_uid, series.series_instance_uid)
        pacs.studies[study.study_instance_uid] = study_id


@contextmanager
def running_orthanc(upload: bool = True) -> Iterator[OrthancPacs]:
    """Start Orthanc (see module doc), optionally upload the sandbox studies, stop it on exit.

    Raises :class:`PacsUnavailable` when Orthanc or the plugin is missing.
    """
    binary, plugin = find_orthanc()
    with tempfile.TemporaryDirectory(prefix="orthanc-test-") as tmp:
        folder = Path(tmp)
        port = free_port()
        username, password = "pacs-" + secrets.token_hex(4), secrets.token_urlsafe(18)
        config_path = folder / "orthanc.json"
        config_path.write_text(json.dumps(orthanc_config(folder, port, plugin, username, password), indent=2))
        log = folder / "orthanc.log"
        with open(log, "wb") as log_handle:
            process = subprocess.Popen([binary, str(config_path)], stdout=log_handle, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=tmp)
        pacs = OrthancPacs(url=f"http://127.0.0.1:{port}", username=username, password=password)
        try:
            _wait_ready(pacs, process, log)
            plugin_info = requests.get(pacs.url + "/plugins/dicom-web", auth=pacs.auth, timeout=5)
            if plugin_info.status_code == 200:
                pacs.plugin_version = plugin_info.json().get("Version", "")
            if upload:
                upload_sandbox_studies(pacs)
            yield pacs
        finally:
            stop(process, timeout=15)


def require_orthanc() -> None:
    """Skip (loud, one line) when Orthanc is missing; under ``CI=true`` fail instead."""
    try:
        find_orthanc()
    except PacsUnavailable as missing:
        require(False, f"Orthanc PACS not available: {missing}")


@pytest.fixture(scope="session")
def orthanc_pacs() -> Iterator[OrthancPacs]:
    """Session-wide running Orthanc with the sandbox's studies uploaded (see :func:`running_orthanc`)."""
    require_orthanc()
    with running_orthanc() as pacs:
        yield pacs
