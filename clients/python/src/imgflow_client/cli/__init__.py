"""The `imgflow` command."""

import sys

# `import httpx` imports httpx._main, the `httpx` command's code, whenever click, rich and
# pygments are installed (as they are here: this command uses the first two, and rich
# needs pygments). That drags in pygments' lexer tables and rich.syntax: ~0.2 CPU-s of
# every run's ~0.4, for code this command never runs. httpx guards that import with
# `except ImportError` (its fallback when the `httpx[cli]` extra is missing), and a None
# entry in sys.modules makes an import raise ImportError (the import system's documented
# way to block one). So this process takes httpx's own no-CLI path; only `httpx.main`
# differs, and only here. Upstream: encode/httpx#3547 (moving that import to
# httpx/__main__.py); drop this once a release has it. Set before anything imports
# httpx: the package's __init__ imports nothing eagerly for that reason.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
