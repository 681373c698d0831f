"""Shared helpers for benchmark scripts: writing a measured section into BENCHMARKS.md."""
from __future__ import annotations

import platform
import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    return (f"{platform.machine()} CPU, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}, "
            f"Python {platform.python_version()}")


def device_line() -> str:
    """The device a benchmark ran on, for its section's text."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"CPU, {torch.get_num_threads()} thread(s), torch {torch.__version__}"


def write_section(name: str, text: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    """Replace the text between <!-- name:start --> and <!-- name:end --> (appending the markers if absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{text.strip()}\n{end}"
    if start in body:
        body = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, body, flags=re.S)
    else:
        body = body.rstrip() + "\n\n" + block + "\n"
    path.write_text(body)


def publish(name: str, lines: list[str]) -> str:
    """Write the section `name` of BENCHMARKS.md from `lines` and print it."""
    text = "\n".join(lines)
    write_section(name, text)
    print(text)
    return text
