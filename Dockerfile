# syntax=docker/dockerfile:1
# nnserve: the HTTP service (gunicorn) and the retraining worker, one image.
#
#   docker build -t nnserve .
#   docker run -p 8000:8000 -v nnserve-store:/data/store -e NNSERVE_ADMIN_TOKEN=change-me nnserve
#
# Stage 1 builds wheels (the project's and every dependency's); stage 2 is a
# slim runtime that installs only those wheels into /opt/venv, with no pip,
# no compiler and no build files left behind. Behind a TLS-intercepting proxy,
# hand the build your CA bundle as a secret (it is never written to a layer):
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t nnserve .
# A package mirror instead of PyPI: --build-arg PIP_INDEX_URL=https://mirror/simple

FROM python:3.11-slim AS build

ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DEFAULT_TIMEOUT=120

WORKDIR /src

# Dependencies first, from pyproject.toml alone: a change to the code does not download them again.
COPY pyproject.toml ./
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then \
        export PIP_CERT=/run/secrets/ca REQUESTS_CA_BUNDLE=/run/secrets/ca SSL_CERT_FILE=/run/secrets/ca; \
    fi \
    && python -m venv /opt/build \
    && /opt/build/bin/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
    && /opt/build/bin/pip wheel --wheel-dir /wheels -r requirements.txt

COPY README.md LICENSE ./
COPY nn ./nn
COPY service ./service
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then \
        export PIP_CERT=/run/secrets/ca REQUESTS_CA_BUNDLE=/run/secrets/ca SSL_CERT_FILE=/run/secrets/ca; \
    fi \
    && /opt/build/bin/pip wheel --wheel-dir /wheels --find-links /wheels .


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

# Only the wheels of stage 1, offline; then pip, setuptools and numpy's own test suite (17 MB)
# leave the venv. `nnserve --version` imports the whole CLI: a missing dependency fails the build.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels /wheels/nnserve-*.whl \
    && /opt/venv/bin/pip uninstall --yes pip setuptools \
    && find /opt/venv/lib -type d -path '*/site-packages/numpy/*' -name tests -prune -exec rm -rf {} + \
    && nnserve --version

WORKDIR /app
# The catalog: `nnserve serve` trains it into the store when the store is empty (first start).
COPY models ./models

USER 10001:10001
VOLUME ["/data/store"]
EXPOSE 8000

# /readyz answers 200 once the store is readable and every active model is loaded (no curl in slim).
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]

CMD ["nnserve", "serve", "--host", "0.0.0.0"]
