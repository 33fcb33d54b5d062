"""``python -m services.ledger``: run the ledger service until SIGTERM.

With ``LEDGER_PROCESSES`` above 1 this process only starts and watches that many copies: they
share the gRPC and admin ports (``SO_REUSEPORT``) and the ONE durable JetStream consumer
(``LEDGER_CONSUMER_NAME``), each fetching its own batches; see services/common/process_group.py.
"""

import sys

from services.common.process_group import group_size, run_copies

if (count := group_size("LEDGER")) > 1:
    sys.exit(run_copies("services.ledger", "LEDGER", count))

from services.common.lifecycle import run_service
from services.ledger.app import main

run_service(main)
