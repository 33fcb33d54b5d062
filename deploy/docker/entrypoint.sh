#!/bin/sh
# Entrypoint of the billing-suite image: the first argument chooses the process.
# `exec` makes the service PID 1, so SIGTERM from Docker/Kubernetes reaches it directly and
# the service shuts down gracefully.
set -eu

usage() {
    cat <<'USAGE'
usage: docker run IMAGE <command> [args...]

  ingest             python -m services.ingest
  ledger             python -m services.ledger
  drift              python -m services.drift
  stripe-simulator   python -m services.stripe_simulator
  backoffice-gateway python -m services.backoffice_gateway serve
  migrate            alembic upgrade head   (reads DATABASE_URL)
  wait-for-migrations  wait until the database is at the image's migration head
  <anything else>    executed as given, e.g. `python -m services.ingest`
USAGE
}

if [ "$#" -eq 0 ]; then
    usage
    exit 64
fi

command="$1"
shift
case "$command" in
    ingest)
        exec python -m services.ingest "$@" ;;
    ledger)
        exec python -m services.ledger "$@" ;;
    drift)
        exec python -m services.drift "$@" ;;
    stripe-simulator | stripe_simulator | simulator)
        exec python -m services.stripe_simulator "$@" ;;
    backoffice-gateway | backoffice_gateway | gateway)
        exec python -m services.backoffice_gateway serve "$@" ;;
    migrate)
        exec alembic -c /app/alembic.ini upgrade head "$@" ;;
    wait-for-migrations)
        exec python -m services.common.migrate wait "$@" ;;
    help | -h | --help)
        usage ;;
    *)
        exec "$command" "$@" ;;
esac
