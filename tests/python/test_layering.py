"""The stages include one another in one direction only (scripts/include_graph.py has the order)."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_includes_follow_the_stage_order():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "include_graph.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passes   -> runtime" not in r.stdout
