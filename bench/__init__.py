"""Benchmarks (``make bench``); importing the package sets up gRPC credentials for the run."""

import os
import secrets

# The benchmarks start real gRPC servers, which require credentials (services.common.grpc_auth):
# one admin token per run, carried by every client made with services.common.grpc_client.
_token = os.environ.setdefault("GRPC_ADMIN_TOKENS", "bench-" + secrets.token_hex(16)).split(",")[0]
os.environ.setdefault("GRPC_CLIENT_TOKEN", _token)
