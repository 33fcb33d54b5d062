"""``python -m services.ingest``: run the ingest service until SIGTERM.

With ``INGEST_PROCESSES`` above 1 this process only starts and watches that many copies, which
share the HTTP, gRPC and admin ports (``SO_REUSEPORT``); see services/common/process_group.py.
"""

import sys

from services.common.process_group import group_size, run_copies

if (count := group_size("INGEST")) > 1:
    sys.exit(run_copies("services.ingest", "INGEST", count))

from services.common.lifecycle import run_service
from services.ingest.app import main

run_service(main)
