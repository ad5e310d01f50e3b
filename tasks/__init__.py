"""The 14 MARBLE tasks: metadata, and readers for the embedded corpus and the real datasets."""
from tasks.base import TaskSpec, all_tasks, get_task

__all__ = ["TaskSpec", "all_tasks", "get_task"]
