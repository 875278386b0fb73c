"""The Python client page's example (docs/client.md), run as written against ``nnserve serve``."""

import re
import subprocess
import sys
from pathlib import Path

from helpers import service_env

from service.client import Client
from service.store import FileKeyStore

PAGE = Path(__file__).resolve().parents[2] / "docs" / "client.md"


def test_client_page_example_runs(live, store_root):
    code = re.search(r"```python\n(.*?)```", PAGE.read_text(), re.S).group(1)
    assert "http://127.0.0.1:8000" in code
    code = code.replace("http://127.0.0.1:8000", live.url)
    _, key = FileKeyStore(store_root).create("docs", ["admin"])  # the example retrains: an admin key
    env = service_env(NNSERVE_KEY=key)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "'iris'" in lines[0]
    assert re.match(r"\d+ \['(setosa|versicolor|virginica)', '(setosa|versicolor|virginica)'\] \[", lines[1])
    assert re.match(r"\['(setosa|versicolor|virginica)'\]$", lines[2])
    assert re.match(r"succeeded \d+$", lines[3]), done.stdout
    assert lines[4].startswith("422 rows have 2 values, model 'iris' expects 4")
    assert key not in done.stdout + done.stderr


def test_client_page_inputs_retries_and_async_examples_run(live):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)[1:]
    assert len(blocks) == 3, "the page's examples: inputs and infer, retries, AsyncClient"
    outputs = []
    for code in blocks:
        code = code.replace("http://127.0.0.1:8000", live.url)
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=service_env()
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.splitlines())
    expected = Client(live.url).predict("iris", [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]).predictions
    assert outputs[0] == [str(expected), f"[{' '.join(map(repr, expected))}] (2, 3)"]  # the frame, then infer
    assert outputs[1] == []
    assert outputs[2] == [f"10 {expected}"]
