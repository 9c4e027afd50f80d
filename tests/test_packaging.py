"""A wheel holds every file the installed app reads, and `pip install` of it (not editable) gives a working portal.

Builds the wheel from a copy of the sources (`pip wheel --no-deps`), installs it with
`--no-deps --no-index` into a new virtual environment that sees this one's
dependencies through a .pth file (not --system-site-packages, and not this project's
editable install), then, from a directory outside the repository: `billing db upgrade`
(the migrations shipped), and the app answers the login page, renders a portal page
of each area, and serves a static file byte for byte. About half a minute.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.packaging

# Data the installed app reads, as folders of the repository: every file under them must be in the wheel.
DATA_FOLDERS = ("templates", "admin_app/static", "settings/environments", "storage/migrations")
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
                                     "tests", "bench", "instance", "*.db")


def data_files() -> list[str]:
    return sorted(str(path.relative_to(ROOT)) for folder in DATA_FOLDERS for path in (ROOT / folder).rglob("*")
                  if path.is_file() and "__pycache__" not in path.parts)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    sources = tmp_path_factory.mktemp("sources") / "billing-engine"
    shutil.copytree(ROOT, sources, ignore=NOT_SOURCES)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(sources)],
                   check=True, capture_output=True, text=True, timeout=300)
    (built,) = out.glob("billing_engine-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A new virtual environment with the wheel installed; its interpreter."""
    where = tmp_path_factory.mktemp("venv") / "env"
    venv.create(where, with_pip=False)
    python = where / "bin" / "python"
    packages = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
    # The dependencies of this environment, appended to sys.path: a directory named in a .pth file does not have
    # its own .pth files run, so this project's editable install (a finder installed by one of them) stays out.
    (Path(packages) / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    return python


def test_the_wheel_holds_every_template_static_file_and_environment(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = data_files()
    assert any(name.startswith("templates/portal/dashboard/") for name in expected)   # the listing found them
    assert [name for name in expected if name not in names] == []
    assert "dsl/grammar.lark" in names
    assert not any(name.startswith(("tests/", "bench/")) for name in names)


PORTAL_CHECK = textwrap.dedent("""
    import sys
    from pathlib import Path

    import admin_app
    from admin_app import create_app
    from flask import render_template
    from invoicing.pdf import TEMPLATES

    repository = Path(sys.argv[1])
    assert not Path(admin_app.__file__).resolve().is_relative_to(repository), admin_app.__file__
    assert not TEMPLATES.is_relative_to(repository), TEMPLATES

    app = create_app({"TESTING": True})
    client = app.test_client()
    login = client.get("/login")
    assert login.status_code == 200 and 'name="password"' in login.get_data(as_text=True), login.status_code

    with app.test_request_context("/"):
        for page in ("portal/error.html", "portal/dashboard/index.html", "portal/contracts/index.html"):
            # rendered whole from where the wheel put them (pages with richer views are compiled below)
            assert "</html>" in render_template(page, status=404, title="t", message="m", rows=[], contracts=[],
                                                runs=[], fmt=None), page
    names = app.jinja_env.list_templates(filter_func=lambda name: name.startswith("portal/"))
    for name in names:          # every portal template compiles, from where the wheel put it
        app.jinja_env.get_template(name)

    static = client.get("/static/dashboard.js")
    assert static.status_code == 200
    assert static.data == (repository / "admin_app" / "static" / "dashboard.js").read_bytes()
    print(len(names))
""")


def test_an_installed_portal_answers_from_outside_the_repository(installed, tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("BILLING_", "PYTHON"))}
    env.update(BILLING_DATABASE_URL=f"sqlite:///{tmp_path / 'billing.db'}", BILLING_SECRET_KEY="test-only")
    billing = installed.with_name("billing")
    upgrade = subprocess.run([str(billing), "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=120)
    assert upgrade.returncode == 0 and "created the schema" in upgrade.stdout, upgrade.stderr
    checked = subprocess.run([str(installed), "-c", PORTAL_CHECK, str(ROOT)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr
    shipped = [name for name in data_files() if name.startswith("templates/portal/")]
    assert int(checked.stdout.split()[-1]) == len(shipped)
