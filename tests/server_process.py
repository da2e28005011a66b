"""Moved to jupyter_actors.server.process; kept for imports in older tests."""

from jupyter_actors.server.process import ServerProcess, free_port  # noqa: F401
