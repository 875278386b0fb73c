"""gunicorn settings for ``nnserve serve`` (``gunicorn -c service/gunicorn_conf.py service.wsgi:app``).

Each setting can be overridden by the environment variable named beside it.
"""

import os

# Web workers keep BLAS to one thread each: N workers on N cores, no
# oversubscription. Set here, in the master, before any worker imports numpy.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

bind = os.environ.get("NNSERVE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("NNSERVE_WORKERS", os.cpu_count() or 1))
# gthread: keep-alive and slow clients occupy a thread, not the whole worker.
worker_class = "gthread"
threads = int(os.environ.get("NNSERVE_THREADS", "2"))
timeout = 30
graceful_timeout = int(os.environ.get("NNSERVE_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
# Recycle workers now and then (bounded memory growth); jitter avoids all restarting at once.
max_requests = 20000
max_requests_jitter = 2000
# The app logs one JSON line per request (service/logs.py): gunicorn's text access log only if asked for.
accesslog = os.environ.get("NNSERVE_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("NNSERVE_LOG_LEVEL", "info")
# Never expose the server version banner.
proc_name = "nnserve"

# ``nnserve serve`` runs the retraining worker as a child of the gunicorn
# master: started before the web workers, stopped (SIGTERM: the running job
# stops at its next epoch and is requeued) when gunicorn exits.
_retrain_worker = None


def on_starting(server):
    global _retrain_worker
    _start_metrics(server)  # before the retraining worker and the web workers: they inherit the directory
    if os.environ.get("NNSERVE_RETRAIN_WORKER") == "1":
        import subprocess
        import sys

        _retrain_worker = subprocess.Popen([sys.executable, "-m", "service.cli", "worker"])
        server.log.info("retraining worker started (pid %s)", _retrain_worker.pid)


def on_exit(server):
    if _retrain_worker is not None and _retrain_worker.poll() is None:
        _retrain_worker.terminate()
        try:
            _retrain_worker.wait(timeout=graceful_timeout)
        except Exception:  # still training after the grace period: its job is requeued or failed on restart
            _retrain_worker.kill()
        server.log.info("retraining worker stopped")
    _stop_metrics()


# -- observability: JSON logs, Prometheus multiprocess metrics (service/logs.py, service/metrics.py) --
# gunicorn's own log lines (start, workers booting and exiting, errors) as JSON, like the app's.
logger_class = "service.logs.GunicornLogger"

_metrics_tempdir = None


def _start_metrics(server):
    """Point PROMETHEUS_MULTIPROC_DIR at an empty directory: the operator's (emptied) or a fresh temp one.

    Runs once per server start (not on a config reload), in the master, so the
    web workers and the retraining worker inherit it and their figures add up.
    """
    global _metrics_tempdir
    import glob
    import tempfile

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):  # figures of a previous run
            os.remove(stale)
    else:
        path = _metrics_tempdir = tempfile.mkdtemp(prefix="nnserve-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    server.log.info("metrics directory %s", path)


def _stop_metrics():
    if _metrics_tempdir is not None:
        import shutil

        shutil.rmtree(_metrics_tempdir, ignore_errors=True)


def child_exit(server, worker):
    """A web worker exited: drop its live gauges (nnserve_model_active_version) from the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
