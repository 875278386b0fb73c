"""gunicorn settings for ``nnserve serve`` (``gunicorn -c service/server/gunicorn_conf.py service.server.wsgi:app``).

Each setting can be overridden by the environment variable named beside it (service/config.py).
"""

import os

from service.config import value as _setting  # not "config": gunicorn reads that name as its own setting

# Web workers keep BLAS to one thread each: N workers on N cores, no
# oversubscription. Set here, in the master, before any worker imports numpy.
_BLAS_CAPS_SET_HERE = [v for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS") if v not in os.environ]
for _var in _BLAS_CAPS_SET_HERE:
    os.environ[_var] = "1"

bind = _setting("NNSERVE_BIND")
# gthread, workers = cores, 4 threads, max_requests 20000 +- 2000, timeouts below: chosen by measurement,
# the figures and the reasons are in bench/RESULTS.md ("gunicorn settings"; bench/gunicorn_settings.py).
workers = _setting("NNSERVE_WORKERS") or os.cpu_count() or 1
worker_class = "service.server.buffering_worker.BufferingThreadWorker"  # gthread, requests read whole first
threads = _setting("NNSERVE_THREADS")
timeout = 30
graceful_timeout = _setting("NNSERVE_GRACEFUL_TIMEOUT")
keepalive = 5
max_requests = 20000
max_requests_jitter = 2000
# The app logs one JSON line per request (service/logs.py): gunicorn's text access log only if asked for.
accesslog = _setting("NNSERVE_ACCESS_LOG")
errorlog = "-"
loglevel = _setting("NNSERVE_LOG_LEVEL")
# Never expose the server version banner.
proc_name = "nnserve"
# gunicorn 25+ opens a control socket under $HOME (worker counts, reload) by default; nnserve manages its
# workers through settings and signals only, and its image's HOME is not writable: no socket.
control_socket_disable = True

# ``nnserve serve`` runs the retraining worker under a supervisor process, a child of the gunicorn
# master: started before the web workers; the supervisor restarts the worker with backoff when it dies
# (kill -9, out of memory) and stops it (SIGTERM: the running job stops at its next epoch and is
# requeued) when gunicorn exits. A process, not a thread: the master reaps every child it has.
_retrain_worker = None


def on_starting(server):
    global _retrain_worker
    if _GRPC["port"]:
        _check_grpc_port_free(*_grpc_address(server.cfg))
    _start_metrics(server)  # before the retraining worker and the web workers: they inherit the directory
    if os.environ.get("NNSERVE_RETRAIN_WORKER") == "1":
        import subprocess
        import sys

        # The one-thread BLAS caps above are for web workers; training uses the cores they leave.
        env = {k: v for k, v in os.environ.items() if k not in _BLAS_CAPS_SET_HERE}
        _retrain_worker = subprocess.Popen([sys.executable, "-m", "service.training.supervisor"], env=env)
        server.log.info("retraining worker started (supervisor pid %s)", _retrain_worker.pid)


def on_exit(server):
    if _retrain_worker is not None and _retrain_worker.poll() is None:
        _retrain_worker.terminate()
        try:
            _retrain_worker.wait(timeout=graceful_timeout)
        except Exception:  # still training after the grace period: its job is requeued or failed on restart
            _retrain_worker.kill()
        server.log.info("retraining worker stopped")
    _stop_metrics()


# -- the Open Inference Protocol over gRPC (service/server/grpc): one server per web worker, after the fork --
# Never in the master: gRPC's threads and sockets do not survive a fork. Each worker binds NNSERVE_GRPC_PORT with
# SO_REUSEPORT and the kernel spreads connections over them; one that cannot bind fails to boot, and gunicorn stops.


_GRPC = {  # read here, in the master, so that a bad value stops the start at once
    "port": _setting("NNSERVE_GRPC_PORT"),
    "threads": _setting("NNSERVE_GRPC_THREADS"),
    "max_concurrent": _setting("NNSERVE_GRPC_MAX_CONCURRENT"),
    "max_message_bytes": _setting("NNSERVE_MAX_BODY_BYTES"),
    "grace": float(graceful_timeout),
}


def _grpc_address(cfg):
    """(host, port) of the gRPC server: NNSERVE_GRPC_PORT on the HTTP bind's address."""
    address = cfg.bind[0]
    host = address.rpartition(":")[0] if ":" in address and not address.startswith(("unix:", "fd://")) else ""
    return host or "127.0.0.1", _GRPC["port"]


def _check_grpc_port_free(host, port):
    """Refuse to start when another process serves the gRPC port. The workers bind it with SO_REUSEPORT, which
    would let a second server of the same user share it silently (each answering a random half of the calls);
    the master binds it once without, so a port someone listens on fails here with the reason."""
    import socket

    host = host.strip("[]")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed server's TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise RuntimeError(f"gRPC: cannot bind {host}:{port} (NNSERVE_GRPC_PORT): {exc.strerror}") from None


def post_worker_init(worker):
    if not _GRPC["port"]:
        return
    from service.server.grpc.server import GrpcSettings, start_in_worker

    host, _ = _grpc_address(worker.cfg)
    start_in_worker(worker, GrpcSettings(host=host, **_GRPC))


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


def worker_exit(server, worker):
    """A web worker is exiting: let its gRPC calls in flight finish (within the grace), then export the spans it
    still holds (service/tracing.py)."""
    import sys

    grpc_server = sys.modules.get("service.server.grpc.server")  # imported only where a gRPC server started
    if grpc_server is not None:
        grpc_server.stop_in_worker()
    from service import tracing

    tracing.shutdown()


def child_exit(server, worker):
    """A web worker exited: drop its live gauges (nnserve_model_active_version) from the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
