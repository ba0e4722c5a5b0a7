import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "python"))


@pytest.fixture(scope="session")
def unirt_bin():
    path = os.environ.get("UNIRT_BIN", os.path.join(REPO, "build", "unirt"))
    if not os.path.exists(path):
        pytest.fail(f"unirt binary not found at {path}: build it (bash scripts/setup.sh) or set UNIRT_BIN")
    return path


@pytest.fixture(scope="session")
def results_file():
    path = os.environ.get("UNIRT_RESULTS", os.path.join(REPO, "build", "model_results.md"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("| model | input | output | max abs | mean abs | median abs | max abs / scale | median rel |\n"
                "|---|---|---|---|---|---|---|---|\n")
    return path
