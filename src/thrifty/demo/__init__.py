"""``thrifty demo``: replay support questions through the cache in front of the local model."""

from thrifty.demo.replay import DemoReport, Outcome, replay
from thrifty.demo.workload import DemoRequest, Workload, shipped_workload, support_workload

__all__ = [
    "DemoReport",
    "DemoRequest",
    "Outcome",
    "Workload",
    "replay",
    "shipped_workload",
    "support_workload",
]
