"""Render a run's report.html in headless Chromium (Debian: apt install chromium) and save a
screenshot, to check by eye that the self-contained page renders (tables, plots, curves, heatmaps).

    python benchmarks/render_report.py RUN_DIR [--out report.png]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--out", default="report.png")
    args = p.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        sys.exit("no Chromium found; on Debian: apt install chromium")
    page = Path(args.run_dir).resolve() / "report.html"
    if not page.exists():
        sys.exit(f"{page} does not exist; run `taskshare report {args.run_dir}` first")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={Path(args.out).resolve()}",
                    "--window-size=1000,2400", page.as_uri()], check=True, capture_output=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
