"""The retraining worker's supervisor stays small: ``nnserve serve`` keeps it running beside gunicorn all the time."""

import subprocess
import sys


def test_the_supervisor_imports_no_numpy_store_cli_or_worker():
    heavy = ["numpy", "flask", "click", "service.store", "service.cli", "service.training.worker"]
    code = (
        "import sys, service.training.supervisor\n"
        f"loaded = sorted(m for m in {heavy!r} if m in sys.modules)\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
