"""``python -m services.ledger``: run the ledger service until SIGTERM."""

from services.common.lifecycle import run_service
from services.ledger.app import main

run_service(main)
