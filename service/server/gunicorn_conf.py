"""gunicorn settings for ``nnserve serve`` (``gunicorn -c service/server/gunicorn_conf.py service.server.wsgi:app``).

Each setting can be overridden by the environment variable named beside it.
"""

import os

# Web workers keep BLAS to one thread each: N workers on N cores, no
# oversubscription. Set here, in the master, before any worker imports numpy.
_BLAS_CAPS_SET_HERE = [v for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS") if v not in os.environ]
for _var in _BLAS_CAPS_SET_HERE:
    os.environ[_var] = "1"

bind = os.environ.get("NNSERVE_BIND", "127.0.0.1:8000")
# -- Chosen by measurement (bench/gunicorn_settings.py, bench/soak.py) on the 2-core CI machine kind
# (AMD EPYC, 2 cores, shared with other jobs, so figures move by 30-50% between runs; contenders were
# interleaved, 5 s wrk runs, median of 3 rounds; one-row iris predicts, wrk -t2 on loopback, 2026-11-26):
#
#   contender      | c16 req/s p50/p99 ms | c64 req/s p50/p99 ms | 4 slow uploaders + c16: req/s, timeouts
#   sync w2        |  757  21.4 /  44     |  795  72.9 / 175     |    3 req/s, 16 of 16 connections time out
#   sync w4        |  518  28.9 /  88     |  932  68.9 / 140     |    4 req/s, 16 of 16 connections time out
#   gthread w2 t2  | 1480   9.0 /  48     | 1602  28.0 / 172     |  141 req/s, 16 time out (4 threads, 4 taken)
#   gthread w2 t4  | 1791   8.0 / 102     | 1580  34.9 / 258     | 1543 req/s, 0 errors
#   gthread w3 t2  | 1758   7.3 /  87     | 1655  27.8 / 281     | 1455 req/s, 0 errors
#   (non-2xx: 0 everywhere. An earlier 2-round run: gthread w2 t2 2568 / 2077 req/s, t4 1542 / 1658, sync w2
#   1339 / 2264: t2 vs t4 throughput is within the noise; sync loses at c16 and on slow clients every time.)
#
# - worker_class gthread, not sync: a sync worker is held by one slow client for as long as it takes
#   to send its request (4 clients uploading 200 bytes at 10 B / 0.25 s stopped 2 and 4 sync workers
#   dead: 3-4 req/s, every other connection timed out), so sync needs a buffering proxy (nginx) in
#   front. A gthread worker loses one thread to a slow client, and its keep-alive connections wait in
#   the poller, not in a thread; throughput is also higher (sync closes every connection).
# - workers = cores (2): a 3rd worker gains nothing measurable on 2 cores and costs ~56 MB of RSS.
# - threads 4: same throughput as 2 (GIL; numpy work is short), but 8 threads on 2 workers keep
#   serving at full rate with 4 slow uploaders where 4 threads were all taken (141 req/s, timeouts).
#   Against many hostile slow clients (more than workers x threads), put a proxy in front anyway.
# - max_requests 20000 +- 2000 jitter: recycling is a guard, not a need: the 60 s soak (64 connections,
#   mixed v1/v2, 4 retrains promoted under load) grew worker RSS +0.7% with recycling off. Recycling
#   fails nothing: at 300 +- 100 (dozens of restarts in 15 s at c64) non-2xx 0, socket errors 0
#   (gthread w2 t2 / t4, sync w2); each restart reloads the models, so p99 rose to 0.5-0.9 s there,
#   hence a high threshold (a worker recycles about every 30 s at full load). The soak with these
#   settings: 94,544 requests in 60 s (1574 req/s), p99 118 ms, non-2xx 0, socket errors 0, RSS -0.9%.
# - timeout 30: far above the slowest valid request (10,000 digits rows, well under 1 s).
#   graceful_timeout 20: SIGTERM under load (tests/e2e/test_lifecycle.py) lets every in-flight
#   request finish and exits in a few seconds; 20 s also covers a retrain reaching its next epoch.
# - keepalive 5: idle keep-alive connections sit in the gthread poller, closed after 5 s.
workers = int(os.environ.get("NNSERVE_WORKERS", os.cpu_count() or 1))
worker_class = "service.server.buffering_worker.BufferingThreadWorker"  # gthread; requests read whole first
threads = int(os.environ.get("NNSERVE_THREADS", "4"))
timeout = 30
graceful_timeout = int(os.environ.get("NNSERVE_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
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

        # The one-thread BLAS caps above are for web workers; training uses the cores they leave.
        env = {k: v for k, v in os.environ.items() if k not in _BLAS_CAPS_SET_HERE}
        _retrain_worker = subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], env=env)
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


# -- observability: JSON logs, Prometheus multiprocess metrics (service/logs.py, service/telemetry.py) --
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
