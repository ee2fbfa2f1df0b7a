"""The one way alma talks to its user while it works: a timestamped line on stdout, also logged.

Every layer may say something (the driver, a stage, the judge launcher, a command), so this lives at the
bottom, with no imports of its own beyond the standard library.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("alma")


def say(message: str) -> None:
    """Progress line for the terminal and the Ray job log (one line per event, never a redraw)."""
    print(f"[alma {time.strftime('%H:%M:%S')}] {message}", flush=True)
    log.info(message)
