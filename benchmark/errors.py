"""The run path's user-facing error: a sentence naming the option, file or key and what to do (``python -m
benchmark`` prints it as one ``error:`` line, exit code 2). A leaf module, so the data sources, the pipeline
and both drivers raise it without importing each other."""
from __future__ import annotations


class RunError(RuntimeError):
    pass
