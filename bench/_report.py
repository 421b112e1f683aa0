"""Shared by the benchmarks: describe the machine and report a result as JSON."""

from __future__ import annotations

import json
import os
import platform

from dropnet_tf.core.io import atomic_write_text


def machine() -> str:
    return f"{platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()}".replace("  ", " ")


def report(result: dict, json_path: str | None) -> None:
    """Print the result and, if asked, write it atomically to ``json_path``."""
    text = json.dumps(result, indent=2)
    print(text)
    if json_path:
        atomic_write_text(json_path, text + "\n")
