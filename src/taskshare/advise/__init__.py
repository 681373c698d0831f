"""When does it make sense? Advice before training and transferability scores."""
from .advise import Advice, CandidateScores, advise
from .scores import h_score, leep, logme, nce

__all__ = ["Advice", "CandidateScores", "advise", "h_score", "leep", "logme", "nce"]
from .affinity import Affinity, affinity_svg, group_score, propose_groups, save_affinity, task_affinity  # noqa: E402

__all__ += ["Affinity", "affinity_svg", "group_score", "propose_groups", "save_affinity", "task_affinity"]
from .capacity import CapacityReport, CapacityRow, capacity_check  # noqa: E402

__all__ += ["CapacityReport", "CapacityRow", "capacity_check"]
