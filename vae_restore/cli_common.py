"""What every entry point shares: the toolkit's own errors end the program with one clear line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from .errors import Preempted, VAERestoreError


def run_with_clear_errors(main: Callable[[], int]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    try:
        return main()
    except Preempted as e:
        print(str(e), file=sys.stderr)
        return e.exit_code
    except VAERestoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
