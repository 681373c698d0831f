"""A progress bar over epochs that shows the loss and the validation metric (rich, rank 0 only)."""
from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class EpochProgress:
    def __init__(self, epochs: int, enabled: bool = True, label: str = "train"):
        self.enabled = enabled
        self.progress = Progress(TextColumn("[bold]{task.fields[label]}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                 disable=not enabled, transient=True)
        self.task_id = self.progress.add_task("train", total=epochs, label=label, info="")

    def __enter__(self) -> "EpochProgress":
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.progress.stop()

    def update(self, record: dict, metric: str) -> None:
        if not self.enabled:
            return
        info = f"loss {record['train_loss']:.4f}"
        if "val_score" in record:
            info += f"  val {metric} {record['val_score']:.4f}"
        self.progress.update(self.task_id, advance=1, info=info)
