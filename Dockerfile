# syntax=docker/dockerfile:1
# nnserve: the HTTP service (gunicorn) and the retraining worker, one image.
#
#   docker build -t nnserve .
#   docker run -p 8000:8000 -v nnserve-store:/data/store -e NNSERVE_ADMIN_TOKEN=change-me nnserve
#
# Stage 1 downloads the exact dependencies of requirements.lock (hash-checked:
# `make lock` regenerates it) and builds the project's wheel; stage 2 installs
# only those wheels into /opt/venv, with the lock's hashes checked again and no
# dependency resolution; the slim runtime takes that venv alone: no pip, no
# compiler, no wheels and no build files left behind. Behind a TLS-intercepting proxy,
# hand the build your CA bundle as a secret (it is never written to a layer):
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t nnserve .
# A package mirror instead of PyPI: --build-arg PIP_INDEX_URL=https://mirror/simple

FROM python:3.11-slim AS build

ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DEFAULT_TIMEOUT=120

WORKDIR /src

# Dependencies first, from the lock alone: a change to the code does not download them again.
# Every file must match one of the lock's sha256 hashes; --no-deps: the lock is the whole closure.
COPY requirements.lock ./
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then \
        export PIP_CERT=/run/secrets/ca REQUESTS_CA_BUNDLE=/run/secrets/ca SSL_CERT_FILE=/run/secrets/ca; \
    fi \
    && python -m venv /opt/build \
    && /opt/build/bin/pip wheel --require-hashes --no-deps --only-binary :all: --wheel-dir /deps -r requirements.lock

COPY pyproject.toml README.md LICENSE ./
COPY nn ./nn
COPY service ./service
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then \
        export PIP_CERT=/run/secrets/ca REQUESTS_CA_BUNDLE=/run/secrets/ca SSL_CERT_FILE=/run/secrets/ca; \
    fi \
    && /opt/build/bin/pip wheel --no-deps --wheel-dir /dist .


# Stage 2 installs only the wheels of stage 1, offline: the lock's pins with their hashes checked again,
# then nnserve itself, both without dependency resolution (--no-deps); `pip check` fails the build if the
# lock misses a dependency. Then pip, setuptools and numpy's own test suite (17 MB) leave the venv.
# The wheels are COPYed in, not bind-mounted from stage 1: buildah 1.28 (podman 4.3, Debian 12's) keys a
# RUN's layer cache on its text alone, so a bind-mounted new wheel reused the old venv (seen: an image
# built from new code ran the old), and a cached stage 1 could not be mounted at all. A COPY's cache is
# keyed on what it copies; the runtime stage takes the finished venv, not the wheels.
FROM python:3.11-slim AS venv

COPY --from=build /deps /deps
COPY --from=build /dist /dist
COPY --from=build /src/requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /deps \
        --require-hashes --no-deps -r /tmp/requirements.lock \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --no-deps /dist/nnserve-*.whl \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip uninstall --yes pip setuptools \
    && find /opt/venv/lib -type d -path '*/site-packages/numpy/*' -name tests -prune -exec rm -rf {} +


FROM python:3.11-slim AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NNSERVE_STORE=/data/store \
    NNSERVE_MODELS=/app/models

# The service runs as an unprivileged user; the store volume is its only writable place besides /tmp.
RUN groupadd --system --gid 10001 nnserve \
    && useradd --system --uid 10001 --gid nnserve --home-dir /app --no-create-home --shell /usr/sbin/nologin nnserve \
    && mkdir -p /data/store \
    && chown nnserve:nnserve /data/store

COPY --from=venv /opt/venv /opt/venv
# `nnserve --version` imports the whole CLI, the second command the optional backends: a missing dependency fails
# the build. The lock has the extras of the Makefile's IMAGE_EXTRAS: `otel` (traces are one OTEL_* variable away,
# docs/tracing.md) and `postgres` (the PostgreSQL backends' driver).
RUN nnserve --version \
    && python -c "import opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http.trace_exporter" \
    && python -c "import service.store.postgres, service.training.pg_queue"

WORKDIR /app
# The catalog: `nnserve serve` trains it into the store when the store is empty (first start).
COPY models ./models

# OCI labels. make test-container passes VERSION (pyproject's) and REVISION (git's commit).
# The no-op RUN is for buildah 1.28 (podman 4.3, Debian 12's), seen here: its layer cache keys LABEL on
# the text before ARG substitution, so a new REVISION would reuse the old labels; a RUN's key
# includes the build args' values, and every instruction after a rebuilt one is rebuilt too.
ARG VERSION=0.0.0+unknown
ARG REVISION=unknown
RUN echo "nnserve ${VERSION} (${REVISION})"
LABEL org.opencontainers.image.title="nnserve" \
      org.opencontainers.image.description="Train small neural networks with a numpy backprop library and serve them over HTTP." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/nnserve/nnserve" \
      org.opencontainers.image.licenses="MIT"

USER 10001:10001
VOLUME ["/data/store"]
EXPOSE 8000 8081

# /readyz answers 200 once the store is readable and every active model is loaded (no curl in slim).
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]

CMD ["nnserve", "serve", "--host", "0.0.0.0"]
