"""A built wheel works on its own: installed into a fresh venv, run from ``/``.

The wheel is built from a copy of what a fresh clone ships (``pyproject.toml``,
``README.md``, ``app/``), so nothing of the checkout (``policy/``, ``topics/``,
the editable install) can stand in for package data. The fresh venv gets the
wheel only; its dependencies are borrowed from the running venv through a
``.pth`` line, which keeps the test offline and fast while ``app`` itself can
only come from the wheel (the test checks that it does).
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

from app.policy import POLICY_FILES
from app.topics import default_catalog

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("pyproject.toml", "README.md", "app")


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a fresh venv holding only the built wheel."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in SHIPPED:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, source / name)
    dist = work / "dist"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                  "--wheel-dir", str(dist), str(source)], cwd=work)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("incident_intel-*.whl")

    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                   cwd=work).stdout.strip()
    installed = _run([sys.executable, "-m", "pip", "--python", str(python), "install",
                      "--no-deps", "--no-index", "--quiet", str(wheel)], cwd=work)
    assert installed.returncode == 0, installed.stderr
    # Dependencies only: appended after the venv's own site-packages, which holds app.
    (Path(purelib) / "_dependencies.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n", encoding="utf-8")
    return env_dir / "bin"


def test_app_comes_from_the_wheel(installed: Path) -> None:
    where = _run([str(installed / "python"), "-c", "import app; print(app.__file__)"],
                 cwd=Path("/"))
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed.parent), where.stdout


def test_topics_list_reads_the_shipped_catalog(installed: Path) -> None:
    listed = _run([str(installed / "incident-intel"), "topics", "list"], cwd=Path("/"))
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names == list(default_catalog().topics)


def test_policy_check_validates_the_shipped_policy(installed: Path) -> None:
    checked = _run([str(installed / "incident-intel"), "policy", "check"], cwd=Path("/"))
    assert checked.returncode == 0, checked.stderr
    first = checked.stdout.splitlines()[0]
    directory, _, files = first.partition(": ok ")
    assert Path(directory).is_relative_to(installed.parent), first
    assert all(name in files for name in POLICY_FILES.values())
    shipped = yaml.safe_load((Path(directory) / "learning.yml").read_text(encoding="utf-8"))
    local = yaml.safe_load((ROOT / "policy" / "learning.yml").read_text(encoding="utf-8"))
    assert shipped == local


def test_shipped_schemas_match_the_checkout(installed: Path) -> None:
    found = _run([str(installed / "python"), "-c",
                  "from importlib.resources import files; "
                  "d = files('app') / 'defaults' / 'topics' / 'schemas'; "
                  "print('\\n'.join(sorted(p.name for p in d.iterdir())))"], cwd=Path("/"))
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == sorted(p.name for p in (ROOT / "topics" / "schemas").iterdir())


@pytest.mark.broker
@pytest.mark.usefixtures("tansu_available")
def test_the_demo_runs_from_root_on_the_installed_wheel(installed: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = _run([str(installed / "incident-intel"), "demo", "--out", str(out)], cwd=Path("/"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# Weekly Incident Digest" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert list((out / "reports").glob("*.md"))
