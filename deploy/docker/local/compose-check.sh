#!/usr/bin/env bash
# `make compose-check`: prove the image and docker-compose.yml work, on a machine that reaches
# Debian's and PyPI's package mirrors but no image registry (CI here).
#
#  1. a Docker engine: installed from Debian's packages (docker.io, docker-compose, debootstrap)
#     when missing and we are root; started on a private socket when none answers, so the
#     test suite's own engine detection (tests/servers.py) is not disturbed;
#  2. images: a bookworm base from debootstrap + `docker import`, then Python, PostgreSQL and
#     NATS from Debian's packages (deploy/docker/local/*.Dockerfile), then the suite's image
#     from the project's Dockerfile with those as PYTHON_IMAGE / BUILD_IMAGE; each is reused
#     when already present;
#  3. the stack: docker-compose.yml as users run it, with local images and host networking
#     (tests/compose/localize.py says exactly what changes), up;
#  4. the check: signed webhooks from the host, found in the ledger over gRPC
#     (tests/compose/check_stack.py);
#  5. testcontainers: a part of the test suite with its PostgreSQL from testcontainers (the
#     locally built image), so that path of tests/servers.py is exercised, not dead code, and
#     a bulk replay's end (VACUUM after a WAL flush, autovacuum switched) runs on PostgreSQL 15
#     as well as on the suite's embedded 18;
#  6. teardown: `down -v` and the engine stopped if we started it; nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=deploy/docker/local
project=billing-compose-check
log() { printf 'compose-check: %s\n' "$*" >&2; }

# ------------------------------------------------------------------------------ 1. engine
need_packages=()
command -v dockerd > /dev/null || need_packages+=(docker.io)
command -v docker-compose > /dev/null || need_packages+=(docker-compose)
command -v debootstrap > /dev/null || need_packages+=(debootstrap)
if [ ${#need_packages[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
        log "missing ${need_packages[*]} and cannot install them (needs root on Debian)"
        exit 1
    fi
    log "installing ${need_packages[*]} from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" > /dev/null
fi

started_engine=""
compose_file=$(mktemp --suffix=.yml)
engine_root=/var/lib/billing-compose-check
export DOCKER_HOST="${COMPOSE_CHECK_DOCKER_HOST:-unix:///run/billing-compose-check.sock}"
cleanup() {
    status=$?
    log "tearing down"
    [ -f "$compose_file" ] && docker-compose -p "$project" -f "$compose_file" \
        down -v --remove-orphans > /dev/null 2>&1
    rm -f "$compose_file"
    if [ -n "$started_engine" ]; then
        kill "$(cat /run/billing-compose-check.pid)" 2> /dev/null || true
        for _ in $(seq 1 30); do
            [ -e /run/billing-compose-check.pid ] || break
            sleep 1
        done
    fi
    exit $status
}
trap cleanup EXIT
if ! docker info > /dev/null 2>&1; then
    log "starting a Docker engine on ${DOCKER_HOST#unix://} (no bridge: host networking only)"
    mkdir -p "$engine_root"
    dockerd -H "$DOCKER_HOST" --data-root "$engine_root" --exec-root /run/billing-compose-check \
        --pidfile /run/billing-compose-check.pid --bridge=none --iptables=false \
        --ip-masq=false > /tmp/billing-compose-check-dockerd.log 2>&1 &
    started_engine=1
    for _ in $(seq 1 60); do
        docker info > /dev/null 2>&1 && break
        sleep 1
    done
    docker info > /dev/null 2>&1 || { log "the engine did not start"; tail -20 /tmp/billing-compose-check-dockerd.log; exit 1; }
fi

# ------------------------------------------------------------------------------ 2. images
have() { docker image inspect "$1" > /dev/null 2>&1; }
build() {  # build TAG DOCKERFILE CONTEXT [ARGS...]
    local tag=$1 file=$2 context=$3
    shift 3
    log "building $tag"
    docker build -q --network host -t "$tag" -f "$file" "$@" "$context" > /dev/null
}
if ! have billing-base:bookworm; then
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2> /dev/null || true)
    mirror=${mirror:-$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)}
    rootfs=$(mktemp -d)
    log "debootstrap bookworm (minbase) from the machine's Debian mirror"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > /tmp/billing-debootstrap.log 2>&1
    tar -C "$rootfs" -c . | docker import - billing-base:bookworm > /dev/null
    rm -rf "$rootfs"
fi
# Always built: the engine's layer cache makes an unchanged image a matter of seconds.
build billing-python:3.11 "$here/python.Dockerfile" "$here"
build billing-postgres:15 "$here/postgres.Dockerfile" "$here"
build billing-nats:2.9 "$here/nats.Dockerfile" "$here"
# The build stage trusts the host's CA bundle (some mirrors are reached through a TLS proxy);
# it lives only in this throwaway image, never in the runtime stage.
ca_bundle=/etc/ssl/certs/ca-certificates.crt
ca_context=$(mktemp -d)
cp "${PIP_CERT:-$ca_bundle}" "$ca_context/ca-bundle.crt"
printf 'FROM billing-python:3.11\nCOPY ca-bundle.crt /etc/ssl/certs/build-ca-bundle.crt\nENV PIP_CERT=/etc/ssl/certs/build-ca-bundle.crt\n' \
    > "$ca_context/Dockerfile"
build billing-python-build:3.11 "$ca_context/Dockerfile" "$ca_context"
rm -rf "$ca_context"
build billing-suite:local Dockerfile . \
    --build-arg PYTHON_IMAGE=billing-python:3.11 --build-arg BUILD_IMAGE=billing-python-build:3.11
log "image billing-suite:local: $(docker image inspect -f '{{.Size}}' billing-suite:local | awk '{printf "%.0f MB", $1/1e6}')"

# ------------------------------------------------------------------------------ 3. stack
export BILLING_IMAGE_TAG=local
POSTGRES_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
STRIPE_WEBHOOK_SECRETS="whsec_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
GRPC_ADMIN_TOKENS=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
GRPC_READ_TOKENS=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
# The ledger reads ingest's archive with the read token; the host-side check uses it too.
GRPC_CLIENT_TOKEN=$GRPC_READ_TOKENS
# Drift asks ingest to recover events (an admin method): it gets the admin token.
DRIFT_GRPC_CLIENT_TOKEN=$GRPC_ADMIN_TOKENS
# The back-office performs admin actions: it calls with the admin token.
GATEWAY_GRPC_CLIENT_TOKEN=$GRPC_ADMIN_TOKENS
export POSTGRES_PASSWORD STRIPE_WEBHOOK_SECRETS GRPC_ADMIN_TOKENS GRPC_READ_TOKENS GRPC_CLIENT_TOKEN
export DRIFT_GRPC_CLIENT_TOKEN GATEWAY_GRPC_CLIENT_TOKEN
log "starting the stack"
.venv/bin/python -m tests.compose.localize docker-compose.yml > "$compose_file"
docker-compose -p "$project" --project-directory . -f "$compose_file" up -d --no-build \
    > /tmp/billing-compose-up.log 2>&1 || { cat /tmp/billing-compose-up.log; exit 1; }

# ------------------------------------------------------------------------------ 4. check
export COMPOSE_GATEWAY_EXEC="docker-compose -p $project --project-directory . -f $compose_file exec -T backoffice-gateway"
if ! .venv/bin/python -m tests.compose.check_stack; then
    docker-compose -p "$project" -f "$compose_file" ps
    docker-compose -p "$project" -f "$compose_file" logs --tail 40
    exit 1
fi
docker-compose -p "$project" -f "$compose_file" down -v --remove-orphans > /dev/null 2>&1

# ------------------------------------------------------------------------------ 5. testcontainers
log "integration tests with PostgreSQL from testcontainers (billing-postgres:15)"
env -u POSTGRES_PASSWORD -u STRIPE_WEBHOOK_SECRETS -u GRPC_ADMIN_TOKENS -u GRPC_READ_TOKENS \
    -u GRPC_CLIENT_TOKEN -u DRIFT_GRPC_CLIENT_TOKEN -u GATEWAY_GRPC_CLIENT_TOKEN -u BILLING_IMAGE_TAG \
    TESTS_POSTGRES_IMAGE=billing-postgres:15 TESTS_REQUIRE_POSTGRES_SOURCE=testcontainers \
    .venv/bin/python -m pytest -q -p no:cacheprovider tests/common/test_server_choice.py \
    tests/ingest/test_webhook.py tests/ledger/integration/test_replay_end.py
log "ok"
