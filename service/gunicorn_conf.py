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
accesslog = os.environ.get("NNSERVE_ACCESS_LOG", "-")
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
