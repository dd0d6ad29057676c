"""Fault injection: seeded trials of hostile inputs, kills and races; prints the fault table.

    python bench/fault_injection.py            # every class at the issue's minimum (about 2 min)
    python bench/fault_injection.py --smoke    # a few trials per class (what the pytest runs)
    python bench/fault_injection.py --full     # more trials per class
    python bench/fault_injection.py --only SIGKILL -v

Exits 1 when any trial left a traceback, a stuck run, a wrong completion,
lost data or an escape (see quantbot_assets_tests/faults/harness.py); the
groups live in quantbot_assets_tests/faults/ (add a module there and list it
in GROUP_MODULES to extend the suite).
"""

from __future__ import annotations

import sys

from quantbot_assets_tests.faults.harness import main

if __name__ == "__main__":
    sys.exit(main())
