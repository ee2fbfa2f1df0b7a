"""The wheel installs one top-level package, `alma`, with its presets and seed data inside."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_has_only_the_alma_namespace(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("alma_align-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("alma_align-")}
    assert tops == {"alma"}
    for sub in ("core", "engines", "actors", "jobs", "cluster", "commands"):
        assert f"alma/{sub}/__init__.py" in names
    for data in ("alma/presets/tiny.yaml", "alma/presets/smollm2-cpu.yaml", "alma/seeds/sft.jsonl",
                 "alma/seeds/judge.jsonl", "alma/seeds/rubric.md", "alma/templates/report.html.j2"):
        assert data in names
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "alma = alma.cli:main" in entry


def test_ci_runs_exactly_the_readme_test_command():
    """.ci/run is the README's command 2, character for character (the brief: CI calls exactly it)."""
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text().splitlines()
    command = readme[readme.index("# 2. install, then run the test suite (what CI runs, via .ci/run)") + 1]
    assert (root / ".ci" / "run").read_text().strip().splitlines()[-1] == command
