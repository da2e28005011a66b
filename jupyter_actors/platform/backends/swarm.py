"""Docker Swarm: each run is a ``replicated-job`` service; the swarm, not this project, places it.

The manager's engine (the one docker-py talks to) is also where builds happen and where images are
pushed from. Differences from one engine, all forced by swarm services (see README, "Running on a
cluster"): no ``no-new-privileges`` and no swap control (swarm services cannot set them), no
``storage_opt`` (disk is measured, as on ext4), and published ports bind all interfaces of the
task's node - so web servers are published only when the operator opts in.

A task's container is used directly (stop, OOM flag, cgroup figures, disk) when it runs on the
manager's own engine; on another node the service API is all there is: stop removes the service
(SIGTERM, then SIGKILL after the service's stop grace period) and OOM is not reported.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import docker
import requests
from docker.errors import APIError, NotFound
from docker.types import CancellableStream, ContainerSpec as SwarmContainerSpec
from docker.types import Resources, RestartPolicy, ServiceMode, TaskTemplate

from ..errors import EngineUnavailable
from .base import ContainerSpec, ContainerState
from .docker import DockerBackend, DockerLogStream, _parse_engine_time, body_blocks, demultiplexed, format_since

log = logging.getLogger(__name__)

#: Task states after which a task never runs again (the swarm's words).
TERMINAL_TASK_STATES = frozenset({"complete", "failed", "shutdown", "rejected", "orphaned", "remove"})
#: Suffix of the swarm-scoped bridge the services attach to (one local bridge per node, ICC off).
SWARM_NETWORK_SUFFIX = "-swarm"
LABEL_SERVICE_ID = "com.docker.swarm.service.id"
POLL_SECS = 0.25
#: How long a wait blocks on a container's exit before checking whether it should give up (a closed log).
WATCHDOG_WAIT_SECS = 5.0


class SwarmBackend(DockerBackend):
    """Implements ``Backend`` on an existing swarm; ids are service ids."""

    #: Tasks may run on other nodes: this host's boot time says nothing about them.
    runs_on_this_host = False
    #: A task's state lags its container's: wait for the task, then inspect it again.
    stopped_state_is_final = False

    def __init__(self, client: docker.DockerClient | None = None, base_url: str | None = None, *,
                 publish_web_servers: bool = False,
                 stop_grace_secs: float = 10.0) -> None:
        super().__init__(client, base_url)
        swarm = self.api.info().get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
            raise EngineUnavailable(
                "The Docker engine is not a swarm manager (swarm state: "
                f"{swarm.get('LocalNodeState') or 'unknown'}). Run `docker swarm init` (or join this engine "
                "to your swarm as a manager), or point docker_base_url at a manager."
            )
        self.publish_web_servers = publish_web_servers
        self.stop_grace_secs = stop_grace_secs
        self._swarm_network: str | None = None
        self._node_addresses: dict[str, str] = {}

    @property
    def web_unavailable_reason(self) -> str | None:
        if self.publish_web_servers:
            return None
        return ("Runs on Docker Swarm do not publish their web servers: a published port would be open on "
                "every interface of the task's node. To publish them anyway, start the server with "
                "ActorsExtension.swarm_publish_web_servers=True.")

    # -- networks ----------------------------------------------------------------------------------

    def ensure_network(self, name: str) -> str:
        """The local bridge (where the actor API listens) plus a swarm-scoped bridge for the services."""
        local_id = super().ensure_network(name)
        swarm_name = name + SWARM_NETWORK_SUFFIX
        if not any(n["Name"] == swarm_name for n in self.api.networks(names=[swarm_name])):
            try:
                self.api.create_network(
                    swarm_name, driver="bridge", scope="swarm", attachable=True,
                    options={"com.docker.network.bridge.enable_icc": "false"},
                    labels={"jupyter-actors": "network"},
                )
            except APIError as exc:
                if exc.status_code != 409:
                    raise
        self._swarm_network = swarm_name
        return local_id

    # -- services ----------------------------------------------------------------------------------

    def create(self, spec: ContainerSpec) -> str:
        """Create the job service; the swarm schedules it at once (``start`` has nothing left to do)."""
        limits = spec.limits
        container = SwarmContainerSpec(
            image=spec.image, args=spec.command, env=spec.env, labels=spec.labels, user=spec.user,
            init=True, cap_drop=["ALL"], stop_grace_period=int(self.stop_grace_secs * 1e9),
        )
        cpu_limit = limits.nano_cpus if limits.cpu_mode == "quota" else None
        # Memory is reserved (the swarm places a run only where its memory is free); CPU is not, as on
        # one engine: memory is the admission currency, the CPU quota only caps the run.
        resources = Resources(cpu_limit=cpu_limit, mem_limit=limits.memory_bytes, mem_reservation=limits.memory_bytes)
        resources["Limits"]["Pids"] = limits.pids  # docker-py has no argument for it
        networks = [{"Target": self._swarm_network}] if spec.network and self._swarm_network else None
        template = TaskTemplate(container, resources=resources, restart_policy=RestartPolicy(condition="none"),
                                networks=networks)
        endpoint = None
        if spec.publish_port and self.publish_web_servers:
            # Host mode on a free port of the task's node: open on all of that node's interfaces.
            endpoint = {"Ports": [{"Protocol": "tcp", "TargetPort": spec.publish_port, "PublishMode": "host"}]}
        try:
            created = self.api.create_service(template, name=spec.name, labels=spec.labels,
                                              mode=ServiceMode("replicated-job"), endpoint_spec=endpoint)
        except APIError as exc:
            if exc.status_code == 409:  # created before a crash: adopt it rather than duplicate it
                return str(self.api.inspect_service(spec.name)["ID"])
            raise
        return str(created["ID"])

    def start(self, container_id: str) -> None:
        """Nothing to do: a job service starts when it is created."""

    def stop(self, container_id: str, grace_secs: float) -> None:
        local = self._local_container(container_id)
        if local is not None:
            super().stop(local, grace_secs)
        else:
            self._remove_service(container_id)  # SIGTERM, then SIGKILL after the service's grace period

    def kill(self, container_id: str) -> None:
        local = self._local_container(container_id)
        if local is not None:
            super().kill(local)
        else:
            self._remove_service(container_id)

    def remove(self, container_id: str) -> None:
        """Remove the job containers, then the service (removing a service leaves its containers behind
        for the node agent to collect later; containers first means none outlive this call)."""
        for container in self.api.containers(all=True, filters={"label": f"{LABEL_SERVICE_ID}={container_id}"}):
            super().remove(container["Id"])
        self._remove_service(container_id)

    def _remove_service(self, service_id: str) -> None:
        with contextlib.suppress(NotFound):
            self.api.remove_service(service_id)

    # -- state ---------------------------------------------------------------------------------------

    def _task(self, service_id: str) -> dict[str, Any] | None:
        """The service's newest task (a job service has one, unless the swarm replaced it)."""
        try:
            tasks = self.api.tasks(filters={"service": service_id})
        except NotFound:
            return None
        return max(tasks, key=lambda task: task["CreatedAt"]) if tasks else None

    def _local_container(self, service_id: str) -> str | None:
        """The task's container id when it is on this engine (a single node, or the manager's tasks)."""
        task = self._task(service_id)
        container_id: str | None = ((task or {}).get("Status", {}).get("ContainerStatus") or {}).get("ContainerID")
        if not container_id:
            return None
        try:
            self.api.inspect_container(container_id)
        except NotFound:
            return None
        return container_id

    def inspect(self, container_id: str) -> ContainerState | None:
        try:
            service = self.api.inspect_service(container_id)
        except NotFound:
            return None
        task = self._task(service["ID"])
        status = (task or {}).get("Status", {})
        task_state = status.get("State", "new")
        finished = task_state in TERMINAL_TASK_STATES
        container_status = status.get("ContainerStatus") or {}
        state = ContainerState(
            id=service["ID"],
            name=service["Spec"]["Name"],
            running=not finished,
            exit_code=container_status.get("ExitCode") if finished else None,
            oom_killed=False,
            started_at=_parse_engine_time(status.get("Timestamp")) if task_state == "running" else None,
            finished_at=_parse_engine_time(status.get("Timestamp")) if finished else None,
            labels=service["Spec"].get("Labels") or {},
            status=task_state,
            created_at=_parse_engine_time(service.get("CreatedAt")),
        )
        if status.get("Err") and (task_state == "rejected" or not container_status.get("ContainerID")):
            # The container never ran (no image on the node, no resources...): the swarm's reason is all there is.
            state.error = f"The swarm reported: {status['Err']}"
        if task_state == "orphaned":
            state.lost = "its swarm node became unavailable"
        elif task_state == "shutdown":
            state.lost = "the swarm shut its task down"
        local = None
        if container_status.get("ContainerID"):
            local = super().inspect(container_status["ContainerID"])
        if local is not None:  # the precise figures, when the task ran on this engine
            state.oom_killed = local.oom_killed
            state.started_at = local.started_at
            state.finished_at = local.finished_at if finished else None
        ports = (status.get("PortStatus") or {}).get("Ports") or []
        if ports and not finished:
            state.host_port = int(ports[0]["PublishedPort"])
            state.web_host = self._node_address(task["NodeID"]) if task and task.get("NodeID") else None
        return state

    def _node_address(self, node_id: str) -> str | None:
        if node_id not in self._node_addresses:
            try:
                self._node_addresses[node_id] = self.api.inspect_node(node_id)["Status"]["Addr"]
            except (NotFound, KeyError):
                return None
        return self._node_addresses[node_id]

    def wait(self, container_id: str) -> None:
        self._await_task_end(container_id)

    def _await_task_end(self, service_id: str, give_up: Callable[[], bool] = lambda: False) -> None:
        """Return once the task is over (or ``give_up()``): blocked on its container's exit when that
        container is on this engine, then (or otherwise) until the task state, which lags, says so."""
        while not give_up():
            local = self._local_container(service_id)
            if local is not None and not self._exited_within(local, WATCHDOG_WAIT_SECS):
                continue  # still running: look at give_up() again
            state = self.inspect(service_id)
            if state is None or not state.running:
                return
            time.sleep(POLL_SECS)

    def list(self, labels: dict[str, str]) -> list[ContainerState]:
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        states = []
        for service in self.api.services(filters=filters):
            state = self.inspect(service["ID"])
            if state is not None:
                states.append(state)
        return states

    # -- logs ----------------------------------------------------------------------------------------

    def logs(self, container_id: str, since_ns: int | None, follow: bool) -> DockerLogStream:
        """The service's log (from any node). A followed service log never ends by itself, so a
        watchdog closes it once the task has finished; the caller drains the rest without follow."""
        params = {"stdout": 1, "stderr": 1, "timestamps": 1, "follow": int(follow), "tail": "all"}
        if since_ns:
            params["since"] = format_since(since_ns)
        response = self.api._get(self.api._url("/services/{0}/logs", container_id), params=params, stream=True)
        blocks = demultiplexed(body_blocks(self._stream_response(response)))
        stream = DockerLogStream(CancellableStream(blocks, response))
        if follow:
            threading.Thread(target=self._close_when_finished, args=(container_id, stream),
                             name=f"swarm-log-{container_id[:12]}", daemon=True).start()
        return stream

    def _close_when_finished(self, service_id: str, stream: DockerLogStream) -> None:
        """Close ``stream`` when the task is over by the same test as ``wait``: closed any earlier, the
        watcher would find the task still running and reopen the log."""
        self._await_task_end(service_id, give_up=lambda: stream.closed)
        stream.close()

    def _exited_within(self, container_id: str, secs: float) -> bool:
        """Block until the container exits (True) or ``secs`` pass (False), so a closed stream frees the thread."""
        try:
            self.api.wait(container_id, timeout=secs)
        except NotFound:
            return True
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            return False
        return True

    # -- per-container figures (only for tasks on this engine) ----------------------------------------

    def disk_quota_supported(self, image: str) -> bool:
        return False  # services cannot set storage_opt: the platform measures disk use instead

    def disk_usage(self, container_id: str) -> int:
        local = self._local_container(container_id)
        return super().disk_usage(local) if local else 0

    def memory_usage(self, container_id: str) -> int | None:
        local = self._local_container(container_id)
        return super().memory_usage(local) if local else None

    def cpu_usage_ns(self, container_id: str) -> int | None:
        local = self._local_container(container_id)
        return super().cpu_usage_ns(local) if local else None

