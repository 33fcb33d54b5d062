"""``python -m services.ingest``: run the ingest service until SIGTERM."""

from services.common.lifecycle import run_service
from services.ingest.app import main

run_service(main)
