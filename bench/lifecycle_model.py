"""The long run of the lifecycle's model-based test (tests/model): many more examples and longer histories
than CI's, against the embedded Valkey and Debian's redis-server.

    python3 bench/lifecycle_model.py [--examples 2000] [--steps 100]

Prints pytest's result; a failure shows hypothesis' shrunk history of rules.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    env = {**os.environ, "WORKERKIT_MODEL_EXAMPLES": str(args.examples), "WORKERKIT_MODEL_STEPS": str(args.steps)}
    command = [sys.executable, "-m", "pytest", "tests/model", "-q", "-p", "no:cacheprovider", "--timeout", "0"]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
