# Python 3.11 from Debian's packages on the locally built bookworm base, for machines that
# reach Debian's and PyPI's package mirrors but no image registry. Same role as python:3.11-slim.
ARG BASE_IMAGE=billing-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
