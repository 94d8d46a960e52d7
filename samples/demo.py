"""`make demo`: run the main job on the bundled samples (filled in by the export work)."""

import sys

print("demo: nothing to run yet", file=sys.stderr)
