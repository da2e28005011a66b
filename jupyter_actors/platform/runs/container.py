"""What a run's container is made of: its image, environment, labels, limits, network and port."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .. import limits as limits_mod
from ..backends.base import Backend, ContainerSpec
from ..clock import parse_iso
from ..config import PlatformConfig
from ..environment import run_environment
from ..errors import InvalidInput
from ..lifecycle import LABEL_ACTOR, LABEL_INSTANCE, LABEL_RUN, LABEL_TIMEOUT_AT
from ..limits import ContainerLimits
from ..models import Actor, Build, Run, Version
from ..proxy import ProxyEndpoint, proxy_environment

#: The runs' bridge network on engines that have one (no traffic between containers).
NETWORK_NAME = "jupyter-actors"


@dataclass
class Endpoints:
    """Addresses a run's container is told about; the API fills them in once it serves them."""

    #: Base URL actors use for the API.
    actor_api_url: str | None
    #: Base URL run web servers are proxied under (``<base><web id>/``).
    web_base_url: str
    #: The events websocket URL, with ``{run_id}`` and ``{token}`` placeholders.
    events_url_template: str | None = None
    #: The runs' forward proxy (APIFY_PROXY_*), while the actor API serves it.
    proxy_endpoint: ProxyEndpoint | None = None

    def web_url(self, run: Run) -> str | None:
        return f"{self.web_base_url}{run['web_id']}/" if run.get("web_id") else None


def container_port(version: Version, default: int) -> int:
    """The port the actor's web server listens on: its own APIFY_CONTAINER_PORT, else the default."""
    for variable in json.loads(version["env_vars"]):
        if variable["name"] in ("APIFY_CONTAINER_PORT", "ACTOR_WEB_SERVER_PORT"):
            try:
                return int(variable["value"])
            except (TypeError, ValueError):
                raise InvalidInput(f"{variable['name']} must be a port number, not {variable['value']!r}.") from None
    return default


def startup_nano_cpus(limits: ContainerLimits, config: PlatformConfig, backend: Backend) -> int | None:
    """The boosted CPU of a run's first seconds, when the boost is on and would change anything."""
    if config.startup_boost_secs <= 0 or limits.cpu_mode != "quota" or not backend.can_set_cpu:
        return None
    boosted = int(min(1.0, limits_mod.host_cores()) * 1e9)
    return boosted if boosted > limits.nano_cpus else None


def container_spec(run: Run, actor: Actor, build: Build, version: Version, limits: ContainerLimits, token: str, *,
                   instance_id: str, config: PlatformConfig, backend: Backend, network: str | None,
                   endpoints: Endpoints) -> ContainerSpec:
    """``token``: the run's API token in plain (the registry has only its hash)."""
    template = endpoints.events_url_template
    env = run_environment(
        run, actor, build, token, api_url=endpoints.actor_api_url, container_url=endpoints.web_url(run),
        events_url=template.format(run_id=run["id"], token=token) if template else None,
        persist_state_interval_secs=config.persist_state_interval_secs,
        container_port=run["container_port"] or config.container_port, custom=json.loads(version["env_vars"]),
        proxy=proxy_environment(endpoints.proxy_endpoint, run),  # its MAC is under the token's hash
        public_api_url=config.public_api_url,
    )
    labels = {
        LABEL_INSTANCE: instance_id,
        LABEL_RUN: run["id"],
        LABEL_ACTOR: actor["id"],
        LABEL_TIMEOUT_AT: run["timeout_at"] or "",
    }
    return ContainerSpec(
        name=run["container_name"], image=build["image"],  # type: ignore[arg-type]  # succeeded: it has one
        env=env, labels=labels, limits=limits,
        user=config.container_user, network=network,
        publish_port=run["container_port"] or config.container_port,
        startup_nano_cpus=startup_nano_cpus(limits, config, backend),
        timeout_at=parse_iso(run["timeout_at"]),
    )
