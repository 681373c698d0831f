"""`taskshare predict` and `taskshare export`."""
from __future__ import annotations

from .export import export
from .load import load
from .predict import write_predictions


def run_serve_command(args, console) -> int:
    from ..distributed import is_main
    if not is_main():
        return 0
    run = load(args.run_dir)
    if args.command == "predict":
        path = write_predictions(run, args.inputs, args.out)
        console.print(f"wrote {path}")
        return 0
    path, worst = export(run, args.format, args.out)
    console.print(f"wrote {path}; outputs match PyTorch's on a sample (largest difference {worst:.1e} <= 1e-4)",
                  highlight=False)
    return 0
