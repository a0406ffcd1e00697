"""``pip install`` of a built wheel gives a runnable app: templates, static files, the console command.

The checkout (without ``.venv``, ``.git``, ``build``) is copied to a temporary
folder, a wheel is built there (``pip wheel --no-deps``, build isolation:
setuptools from the package index), installed with its ``prod`` extra into a
fresh venv in another temporary folder, and started with ``imaging-app serve``
from that folder (nothing of the checkout on ``sys.path``) against a live
sandbox EHR; one EHR launch is completed to its list. Building needs the
package index (setuptools >= 77, the dependencies): without it the test is
skipped with one loud line, and fails under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from tests.deploy.instances import REPO, Browser, ehr_launch, free_port, gunicorn_instance, sandbox_ehr
from tests.environment import require
from tests.support import sandbox_registration

IGNORED = shutil.ignore_patterns(".venv", ".git", "build", "dist", "instance", "test-artifacts", "*.egg-info",
                                 "__pycache__", ".pytest_cache", "results")
INSTALL_BUDGET_SECONDS = 240


def _run(argv: list[str], cwd, env=None, timeout: float = INSTALL_BUDGET_SECONDS) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(venv folder, timings)``: the wheel built from a copy of the checkout, installed into a fresh venv."""
    source = tmp_path_factory.mktemp("source") / "imaging-app"
    shutil.copytree(REPO, source, ignore=IGNORED)
    wheelhouse = tmp_path_factory.mktemp("wheelhouse")
    started = time.monotonic()
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheelhouse), str(source)],
                 cwd=source)
    require(built.returncode == 0, "cannot build the wheel (pip wheel needs setuptools>=77 from the package "
                                   f"index): {built.stderr.strip().splitlines()[-1:] or built.returncode}")
    build_seconds = time.monotonic() - started
    wheels = sorted(wheelhouse.glob("imaging_smart_app-*.whl"))
    assert len(wheels) == 1, wheels
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    started = time.monotonic()
    pip = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{wheels[0]}[prod]"], cwd=venv)
    require(pip.returncode == 0, "cannot install the wheel's dependencies (no package index reachable): "
                                 f"{pip.stderr.strip().splitlines()[-1:] or pip.returncode}")
    timings = {"build": build_seconds, "install": time.monotonic() - started, "wheel": wheels[0]}
    print(f"\nwheel built in {timings['build']:.1f} s, installed with dependencies in {timings['install']:.1f} s")
    return venv, timings


def test_the_wheel_carries_templates_static_files_and_the_gunicorn_settings(installed):
    import zipfile
    venv, timings = installed
    names = set(zipfile.ZipFile(timings["wheel"]).namelist())
    for path in ("app/templates/base.html", "app/static/app.css", "app/gunicorn.conf.py", "app/smart_launch.schema.json",
                 "app/cli.py"):
        assert path in names
    assert not any(name.startswith(("templates/", "static/", "tests/")) for name in names)
    where = _run([str(venv / "bin" / "python"), "-c", "import app; print(app.__file__)"], cwd=venv)
    assert where.stdout.strip() == str(next((venv / "lib").glob("python3*/site-packages")) / "app" / "__init__.py")


def test_check_config_names_a_missing_secret_key_and_a_missing_registration(installed, tmp_path):
    venv, _ = installed
    command = str(venv / "bin" / "imaging-app")
    env = {"PATH": os.environ.get("PATH", ""), "SMART_LAUNCH_CONFIG": str(tmp_path / "absent.json")}
    missing = _run([command, "check-config"], cwd=tmp_path, env=env)
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"configuration error: {tmp_path / 'absent.json'}: file not found (set SMART_LAUNCH_CONFIG)"


def test_the_installed_app_serves_a_launch_end_to_end(installed, tmp_path):
    venv, _ = installed
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    with sandbox_ehr(public) as (ehr_base, sandbox):
        (tmp_path / "smart-launch.json").write_text(json.dumps(sandbox_registration(public, ehr_base)), "utf-8")
        env = {"PATH": os.environ.get("PATH", ""), "SECRET_KEY": "wheel-test-" + "k" * 40,
               "SMART_LAUNCH_CONFIG": str(tmp_path / "smart-launch.json"),
               "LAUNCH_STORE_URL": f"sqlite:///{tmp_path}/state/launches.sqlite3"}
        check = _run([str(venv / "bin" / "imaging-app"), "check-config"], cwd=tmp_path, env=env)
        assert check.returncode == 0, check.stderr
        assert f"launch store: {tmp_path}/state/launches.sqlite3" in check.stdout
        with gunicorn_instance(env, tmp_path / "app.log", port=port, cwd=tmp_path, workers=1,
                               command=[str(venv / "bin" / "imaging-app"), "serve"]) as instance:
            browser = Browser(f"127.0.0.1:{port}")
            started = browser.get(instance.url, ehr_launch(ehr_base, "pt-1001"))
            assert started.status_code == 303
            callback = browser.get(instance.url, browser.authorize(started.headers["Location"]))
            assert callback.status_code == 303, callback.text[:300]
            page = browser.get(instance.url, callback.headers["Location"].removeprefix(public))
            assert page.status_code == 200
            assert len(re.findall(r'data-study-id="([^"]+)"', page.text)) == 10
            css = browser.get(instance.url, "/static/app.css")
            assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
        log = (tmp_path / "app.log").read_text()
    assert '"GET /callback HTTP/1.1" 303' in log  # gunicorn's access log, from the packaged gunicorn.conf.py
    assert "state=" not in log and "code=" not in log and "pt-1001" not in log
    assert dict(sandbox.grants) == {"authorization_code": 1}
