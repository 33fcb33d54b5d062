# syntax=docker/dockerfile:1
# One image for every service of the billing suite. The process is chosen by the command:
#
#   docker run IMAGE ingest              -> python -m services.ingest
#   docker run IMAGE ledger              -> python -m services.ledger
#   docker run IMAGE stripe-simulator    -> python -m services.stripe_simulator
#   docker run IMAGE migrate             -> alembic upgrade head   (reads DATABASE_URL)
#   docker run IMAGE python -m ...       -> any other command runs as given
#
# Without an image registry, `make compose-check` builds the base images from Debian's
# packages (deploy/docker/local/) and passes them as PYTHON_IMAGE / BUILD_IMAGE.

ARG PYTHON_IMAGE=python:3.11-slim
# The build stage may use another image of the same Python (`make compose-check` adds the
# host's CA bundle there so pip reaches the package mirror; the runtime stage never gets it).
ARG BUILD_IMAGE=${PYTHON_IMAGE}

# ---------------------------------------------------------------------------- build stage
FROM ${BUILD_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv && pip install --upgrade pip

WORKDIR /src

# 1. Third-party dependencies only, so this layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
 && pip install -r /tmp/requirements.txt

# 2. A C compiler and the Python headers for step 3, in this stage only (the runtime stage
#    gets the extension modules, never the compiler). The official python images carry their
#    headers; Debian's python3 needs python3-dev.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && { test -f "$(python -c 'import sysconfig; print(sysconfig.get_path("include"))')/Python.h" \
      || apt-get install -y --no-install-recommends python3-dev; } \
 && rm -rf /var/lib/apt/lists/*

# 3. The project itself (the `services` package), without re-resolving dependencies, with
#    the ledger's hot modules compiled exactly like `make compile` (tools/native_build.py,
#    the list in pyproject.toml): the image replays at the speed bench/RESULTS.md reports.
#    mypy (mypyc) and setuptools come from the dev extra's own requirement lines and go to a
#    throw-away directory, not into the venv the runtime stage copies. The extension modules
#    and their manifest travel as package data; the ledger checks them at start
#    (services/ledger/domain/native.py) and exports the form it runs as
#    `ledger_projection_form` (compose-check asserts "compiled").
COPY services ./services
COPY tools/native_build.py ./tools/
RUN python -c "import tomllib; dev = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['dev']; open('/tmp/native-build.txt', 'w').write('\n'.join(r for r in dev if r.split('>')[0].split('=')[0] in ('mypy', 'setuptools')) + '\n')" \
 && pip install --target /tmp/native-build -r /tmp/native-build.txt \
 && PYTHONPATH=/tmp/native-build python tools/native_build.py \
 && rm -rf /tmp/native-build build \
 && pip install --no-deps .

# 4. gRPC code, exactly like `make proto`: protoc with the mypy plugins, an __init__.py in
#    every generated sub-folder. mypy-protobuf is a dev tool: installed for this step only.
COPY protos ./protos
RUN pip install mypy-protobuf \
 && rm -rf gen && mkdir -p gen \
 && python -m grpc_tools.protoc -Iprotos --python_out=gen --grpc_python_out=gen \
        --mypy_out=gen --mypy_grpc_out=gen $(find protos -name '*.proto') \
 && find gen -mindepth 1 -type d -exec touch {}/__init__.py \; \
 && pip uninstall -y mypy-protobuf types-protobuf grpcio-tools \
 && python -m compileall -q gen

# -------------------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="billing-suite" \
      org.opencontainers.image.description="Stripe billing archive/ledger gRPC services"

# Generated code goes on PYTHONPATH (the Makefile uses a .pth file for the same effect).
# Bytecode is compiled at build time: the root filesystem is read-only in Kubernetes.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app/gen \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONFAULTHANDLER=1 \
    ALEMBIC_CONFIG=/app/alembic.ini

RUN groupadd --system --gid 10001 billing \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin billing

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
COPY --from=build /src/gen ./gen
# Alembic: `alembic upgrade head` runs from /app; migrations/env.py reads DATABASE_URL.
COPY alembic.ini ./
COPY migrations ./migrations
COPY deploy/docker/entrypoint.sh /usr/local/bin/billing-entrypoint
RUN chmod 0755 /usr/local/bin/billing-entrypoint \
 && python -m compileall -q /app/migrations

USER 10001:10001

# ingest: webhooks 8090, gRPC 50051, admin 9091 | ledger: gRPC 50052, admin 9092
# stripe simulator: 12111
EXPOSE 8090 50051 9091 50052 9092 12111

ENTRYPOINT ["billing-entrypoint"]
CMD ["help"]
