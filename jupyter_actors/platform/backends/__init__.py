"""Container engines behind one small interface; the local Docker engine is the default."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Backend, ContainerSpec, ContainerState, LogLine
from .docker import DockerBackend

if TYPE_CHECKING:
    from ..config import PlatformConfig


def create_backend(config: PlatformConfig, *, connect: bool = True) -> Backend:
    """The engine ``config.backend`` names; cluster backends build and push on the local engine.

    ``connect=False``: a local Docker engine that does not answer yet is reached later (``Backend.connect``);
    cluster backends need theirs now."""
    if config.backend == "swarm":
        from .swarm import SwarmBackend

        return SwarmBackend(base_url=config.docker_base_url, publish_web_servers=config.swarm_publish_web_servers,
                            stop_grace_secs=config.stop_grace_secs)
    if config.backend == "kubernetes":
        from .kubernetes import KubernetesBackend

        try:
            images: Backend | None = DockerBackend(base_url=config.docker_base_url)
        except Exception:  # no local engine: images must be pre-distributed
            images = None
        return KubernetesBackend(config.kubernetes_namespace, images=images, kubeconfig=config.kubeconfig,
                                 context=config.kubernetes_context)
    return DockerBackend(base_url=config.docker_base_url, connect=connect)


__all__ = ["Backend", "ContainerSpec", "ContainerState", "DockerBackend", "LogLine", "create_backend"]
