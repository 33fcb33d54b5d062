"""``python -m services.drift``: run the drift service until SIGTERM.

``python -m services.drift import-baseline [--operator NAME]``: the first-install import
(``DriftService.ImportBaseline``) run once from the command line, with progress logs.
"""

import sys

from services.common.lifecycle import run_service
from services.drift.app import main

if len(sys.argv) > 1 and sys.argv[1] == "import-baseline":
    from services.drift.cli import import_baseline_main

    run_service(import_baseline_main)
else:
    run_service(main)
