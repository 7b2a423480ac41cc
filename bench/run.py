"""Run every benchmark in bench/ and print one JSON object per line:
{"metric": ..., "value": ..., "unit": ..., "target": ...}. The machine is described on stderr.

Usage: python bench/run.py [NAME ...]   (NAME = part of a bench_*.py file name, e.g. `client`)
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = platform.python_version()
    return f"{cpu}, {os.cpu_count()} cores, Python {python}, {platform.system()} {platform.machine()}"


def main(argv: list[str]) -> int:
    print(f"# machine: {machine()}", file=sys.stderr)
    failed = 0
    for path in sorted(HERE.glob("bench_*.py")):
        if argv and not any(name in path.stem for name in argv):
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            rows = module.run()
        except Exception as exc:  # one broken benchmark must not hide the others
            failed += 1
            print(f"# {path.name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        for row in rows:
            print(json.dumps(row), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
