"""Imported first by each benchmarks/ script that runs as a script (`python benchmarks/x.py`).

Python puts the script's folder, benchmarks/, first on sys.path; its kernels.py would then shadow Hugging Face's
`kernels` package, which transformers imports when it is installed. This puts the repo root there instead (for
`import benchmarks.*` and a linmem that is not installed).
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]
