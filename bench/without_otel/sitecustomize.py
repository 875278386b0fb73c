"""On ``PYTHONPATH``, makes every import of the OpenTelemetry packages fail, as where the ``otel`` extra is not
installed: bench/tracing_overhead.py's baseline server, and tests/test_tracing.py's check that nnserve runs the
same without them. Python imports ``sitecustomize`` at start-up in every process, gunicorn's workers too."""

import sys


class _WithoutOpenTelemetry:
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"{name}: the otel extra is not installed here (bench/without_otel)")


sys.meta_path.insert(0, _WithoutOpenTelemetry())
