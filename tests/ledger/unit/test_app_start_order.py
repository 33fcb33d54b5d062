"""The ledger's consumer does not wait for the gRPC and admin side's imports (issue 12, goal 2).

``services.ledger.app`` imports only what the JetStream consumer needs; ``start_ledger``
starts the consumer, then imports ``SERVING_MODULES`` (gRPC, the query and directory
servicers, aiohttp's server: ~0.15 s of a ~0.65 s start) in a thread while the consumer
connects and fetches. Checked in a fresh interpreter, since this one has imported them all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import json, sys
import services.ledger.app as app
loaded = [name for name in app.SERVING_MODULES if name in sys.modules]
app.import_serving_modules()
print(json.dumps({"before": loaded,
                  "after": [name for name in app.SERVING_MODULES if name in sys.modules],
                  "count": len(app.SERVING_MODULES)}))
"""


def test_importing_the_app_leaves_the_serving_modules_for_later() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    found = json.loads(out.strip().splitlines()[-1])
    assert found["before"] == []
    assert len(found["after"]) == found["count"] >= 5  # and the list names real modules
