"""The built wheel installs `agents/` and `envs/` under the `rlhf_gym` namespace only."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds the wheel and a fresh venv

REPO = Path(__file__).resolve().parents[1]


# Build artefacts and local state that must not reach (or be written into) the build.
_NOT_SOURCES = (".git", ".venv", "build", "dist", "runs", "*.egg-info", "__pycache__",
                ".pytest_cache", ".hypothesis", ".ruff_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built offline from a clean copy of the checkout.

    ``--no-isolation`` builds with this environment's setuptools and wheel (the ``test``
    extra) instead of downloading them. Building a copy keeps the checkout's own
    ``build/`` folder, whose stale files setuptools would package, out of the wheel.
    """
    source = tmp_path_factory.mktemp("source") / "rlhf-gym"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*_NOT_SOURCES))
    # A world is a folder: one added here must reach the wheel, assets included, with no
    # pyproject.toml edit (setuptools discovers the packages inside each package-dir root).
    probe = source / "envs" / "probe_world"
    (probe / "assets" / "tokenizer").mkdir(parents=True)
    (probe / "__init__.py").write_text('"""A folder the packaging test adds; it declares no SUITE_ENV."""\n')
    (probe / "assets" / "tokenizer" / "tokenizer.json").write_text("{}")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (built,) = out.glob("rlhf_gym-*.whl")
    return built


def test_wheel_contents_are_namespaced(wheel: Path):
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.startswith("rlhf_gym-")}
    assert top_level == {"rlhf_gym"}, top_level
    assert "rlhf_gym/agents/__init__.py" in names and "rlhf_gym/worlds/__init__.py" in names


def test_every_world_folder_ships_with_its_assets(wheel: Path):
    """Each world of the suite, and a folder added without editing pyproject.toml, is in
    the wheel with its package and its assets."""
    import zipfile

    import rlhf_gym

    names = set(zipfile.ZipFile(wheel).namelist())
    for env in rlhf_gym.SUITE:
        folder = env.module.replace(".", "/")
        assert f"{folder}/__init__.py" in names and f"{folder}/assets/card.json" in names, env.env_id
    assert {"rlhf_gym/envs/probe_world/__init__.py", "rlhf_gym/envs/probe_world/assets/tokenizer/tokenizer.json"} <= names


def test_wheel_imports_in_a_fresh_venv(wheel: Path, tmp_path: Path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--no-index", "--no-deps", "-q", str(wheel)], check=True)
    # Dependencies come from the test's own environment, appended after the fresh venv's
    # site-packages; PYTHONPATH does not run .pth files, so the editable checkout is unseen.
    deps = sysconfig.get_paths()["purelib"]
    code = (
        f"import sys; sys.path.append({deps!r})\n"
        "import rlhf_gym, rlhf_gym.envs.summarize, rlhf_gym.agents\n"
        "import importlib.util as u\n"
        "assert u.find_spec('agents') is None and u.find_spec('envs') is None\n"
        "print(rlhf_gym.envs.summarize.__file__)\n"
    )
    # Run outside the checkout: python -c puts the working directory first on sys.path.
    result = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path)
    assert str(env_dir) in result.stdout
