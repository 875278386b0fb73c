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
