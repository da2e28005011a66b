"""Container engines behind one small interface; the local Docker engine is the default."""

from .base import Backend, ContainerSpec, ContainerState, LogLine
from .docker import DockerBackend

__all__ = ["Backend", "ContainerSpec", "ContainerState", "DockerBackend", "LogLine"]
