"""``python -m ntk_core``: the documented name of the command line, kept working.

The CLI lives with the runner (``python -m runner``). This entry hands the process over
to it with ``exec`` instead of importing it, so the numerics package imports nothing of
the runner, the cache or the UI (the import-graph test checks that).
"""

import os
import sys

if __name__ == "__main__":
    # Keep the interpreter's own options (e.g. -X, -W) that came before "-m ntk_core".
    orig = list(getattr(sys, "orig_argv", []))
    opts = orig[1:orig.index("-m")] if "-m" in orig else []
    os.execv(sys.executable, [sys.executable, *opts, "-m", "runner", *sys.argv[1:]])
