"""``KubernetesBackend``: one Job per run (see the package's docstring for how it maps onto the cluster)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from urllib3 import HTTPResponse

from ...errors import EngineUnavailable, NotFound
from ..base import Backend, ContainerSpec, ContainerState
from .client import STREAM_ERRORS, ApiException, kubernetes
from .jobs import (
    CANNOT_PULL,
    CANNOT_START,
    POD_JOB_LABELS,
    SAMPLE_NETWORK_POLICY,
    _container_status,
    _owned_by,
    _pod_order,
    _time,
    _waiting_to_start,
    job_body,
    job_finished,
    job_name,
    job_state,
    merged_labels,
    split_labels,
)
from .logs import KubernetesLogStream, _iter_lines, _shutdown

log = logging.getLogger(__name__)


class KubernetesBackend(Backend):
    """Implements ``Backend`` with one Job per run in ``namespace``; all calls block (run them off the loop)."""

    #: Pods run on the cluster's nodes: this host's boot time says nothing about them.
    runs_on_this_host = False
    #: Seconds between looks at a pod that has not started yet (or a Job between two pods).
    poll_interval_secs: float = 0.5
    #: Server-side timeout of one watch request in ``wait`` (it is then renewed).
    watch_timeout_secs: int = 60
    #: ``sinceSeconds`` is computed from ``since_ns`` plus this much, against clock skew with the nodes.
    log_since_margin_secs: int = 600
    #: A pod whose image cannot be pulled for this long fails its run (Kubernetes would retry forever).
    image_pull_grace_secs: float = 120.0

    def __init__(self, namespace: str = "default", *, api_client: Any = None, images: Backend | None = None,
                 kubeconfig: str | None = None, context: str | None = None, service_account: str | None = None,
                 image_pull_secret: str | None = None, active_deadline_margin_secs: int = 60) -> None:
        if kubernetes is None:
            raise EngineUnavailable(
                "The Kubernetes backend needs the `kubernetes` package: pip install 'jupyter-actors[kubernetes]'."
            )
        self.namespace = namespace
        self.images = images
        self.service_account = service_account
        self.image_pull_secret = image_pull_secret
        self.active_deadline_margin_secs = active_deadline_margin_secs
        self._owns_client = api_client is None
        self.api_client = api_client if api_client is not None else self._load_client(kubeconfig, context)
        self.batch = kubernetes.client.BatchV1Api(self.api_client)
        self.core = kubernetes.client.CoreV1Api(self.api_client)
        self._closed = threading.Event()
        self._watches: set[Any] = set()  # urllib3 responses of the open watches
        self._watches_lock = threading.Lock()
        self._ping()

    @staticmethod
    def _load_client(kubeconfig: str | None, context: str | None) -> kubernetes.client.ApiClient:
        from kubernetes import config as kube_config

        configuration = kubernetes.client.Configuration()
        problems = []
        if kubeconfig is None and context is None:
            try:
                kube_config.load_incluster_config(client_configuration=configuration)
                return kubernetes.client.ApiClient(configuration)
            except Exception as exc:  # not in a pod: try a kubeconfig next
                problems.append(f"not in a cluster ({exc})")
        path = kubeconfig or os.environ.get("KUBECONFIG") or None
        try:
            kube_config.load_kube_config(config_file=path, context=context, client_configuration=configuration,
                                         persist_config=False)
        except Exception as exc:  # any failure here means "no cluster configured"
            problems.append(f"no usable kubeconfig at {path or '~/.kube/config'} ({exc})")
            raise EngineUnavailable(
                "No Kubernetes cluster is configured: " + "; ".join(problems) + ". Run the server in a pod "
                "with a service account, or point KUBECONFIG (or the kubeconfig option) at a kubeconfig "
                "file and choose its context."
            ) from None
        return kubernetes.client.ApiClient(configuration)

    def _ping(self) -> None:
        try:
            self._call(self.batch.list_namespaced_job, self.namespace, limit=1, _request_timeout=(10, 30))
        except Exception as exc:  # unreachable, unauthorised, no such namespace...
            host = getattr(self.api_client.configuration, "host", "?")
            raise EngineUnavailable(
                f"The Kubernetes API at {host} does not answer for namespace {self.namespace!r} ({exc}). "
                "Check the kubeconfig and context, that the namespace exists, and that the account may "
                "create, get, list, watch, patch and delete jobs, list and delete pods and read pods/log."
            ) from None

    def close(self) -> None:
        """Unblock ``wait`` calls and close the API client if this backend made it."""
        self._closed.set()
        with self._watches_lock:
            watches = list(self._watches)
        for response in watches:
            _shutdown(response)
        if self._owns_client:
            self.api_client.close()

    # -- API helpers ------------------------------------------------------------------------------

    @staticmethod
    def _call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """One API call answered as the plain JSON object the API reference documents."""
        kwargs.setdefault("_request_timeout", (10, 60))
        response = function(*args, _preload_content=False, **kwargs)
        try:
            data = response.data
        finally:
            response.release_conn()
        return json.loads(data) if data else {}

    def _get_job(self, name: str) -> dict[str, Any] | None:
        try:
            return self._call(self.batch.read_namespaced_job, name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _job_pods(self, name: str, uid: str | None = None) -> list[dict[str, Any]]:
        listing = self._call(self.core.list_namespaced_pod, self.namespace, label_selector=f"job-name={name}")
        return sorted((p for p in listing.get("items") or [] if _owned_by(p, uid)), key=_pod_order)

    def _job_over(self, name: str) -> bool:
        job = self._get_job(name)
        return job is None or job_finished(job) or bool(job["metadata"].get("deletionTimestamp"))

    def _delete_job(self, name: str, grace_secs: int | None = None) -> None:
        try:
            self._call(self.batch.delete_namespaced_job, name, self.namespace, propagation_policy="Background",
                       grace_period_seconds=grace_secs)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _cannot_start(self, pod: dict[str, Any]) -> str | None:
        """Why a waiting pod will never start, or None while it may still (an image pull gets a grace period)."""
        waiting = (_container_status(pod).get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in CANNOT_PULL:
            created = _time((pod.get("metadata") or {}).get("creationTimestamp"))
            if created is None or time.time() - created.timestamp() < self.image_pull_grace_secs:
                return None
        elif reason not in CANNOT_START:
            return None
        return f"The cluster cannot start the container: {reason}: {waiting.get('message', '')}".rstrip(": ")

    def _unstartable(self, pods: list[dict[str, Any]]) -> str | None:
        """Why the Job's current pod will never start (it would wait for the Job's deadline), or None."""
        pod = pods[-1] if pods else None
        return self._cannot_start(pod) if pod is not None and _waiting_to_start(pod) else None

    # -- containers -------------------------------------------------------------------------------

    def job_body(self, spec: ContainerSpec) -> dict[str, Any]:
        """The batch/v1 Job for ``spec`` (suspended: ``start`` resumes it)."""
        return job_body(spec, namespace=self.namespace, service_account=self.service_account,
                        image_pull_secret=self.image_pull_secret, deadline_margin_secs=self.active_deadline_margin_secs)

    def create(self, spec: ContainerSpec) -> str:
        body = self.job_body(spec)
        name: str = body["metadata"]["name"]
        try:
            self._call(self.batch.create_namespaced_job, self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:  # 409: created before a crash: adopt it rather than duplicate it
                raise
        return name

    def start(self, container_id: str) -> None:
        self._call(self.batch.patch_namespaced_job, container_id, self.namespace, {"spec": {"suspend": False}},
                   _content_type="application/merge-patch+json")

    def stop(self, container_id: str, grace_secs: float) -> None:
        grace = max(0, round(grace_secs))
        pods = self._job_pods(container_id)
        self._delete_job(container_id, grace)
        for pod in pods:  # the garbage collector would give them their own 30 s; honour ours
            try:
                self._call(self.core.delete_namespaced_pod, pod["metadata"]["name"], self.namespace,
                           grace_period_seconds=grace)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def kill(self, container_id: str) -> None:
        self.stop(container_id, 0)

    def remove(self, container_id: str) -> None:
        self._delete_job(container_id)

    def inspect(self, container_id: str) -> ContainerState | None:
        """The Job as a ContainerState; one whose pod will never start is reported ended, with the reason."""
        job = self._get_job(container_id)
        if job is None:
            return None
        return self._state(job, self._job_pods(container_id, job["metadata"].get("uid")))

    def _state(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> ContainerState:
        state = job_state(job, pods)
        problem = self._unstartable(pods) if state.running else None
        if problem:
            return dataclasses.replace(state, running=False, status="failed", error=problem)
        return state

    def wait(self, container_id: str) -> None:
        """Block until the Job has finished (Complete or Failed), is gone, or its pod will never start
        (as ``inspect`` reports it; the pod is looked at when the Job is listed, not watched).

        A watch from the resource version of a fresh list; when the API answers 410 Gone (the version
        was compacted away) it lists again and watches from the new version.
        """
        selector = f"metadata.name={container_id}"
        failures = 0
        while not self._closed.is_set():
            try:
                listing = self._call(self.batch.list_namespaced_job, self.namespace, field_selector=selector)
                items = listing.get("items") or []
                if not items or job_finished(items[0]) or items[0]["metadata"].get("deletionTimestamp"):
                    return
                if self._unstartable(self._job_pods(container_id, items[0]["metadata"].get("uid"))):
                    return
                version = listing["metadata"]["resourceVersion"]
                while version is not None and not self._closed.is_set():
                    version = self._watch(selector, version)
                    if version == "":
                        return
                failures = 0
            except ApiException as exc:
                if exc.status != 410:
                    raise
            except STREAM_ERRORS:
                if self._closed.is_set():
                    return
                failures += 1
                if failures > 5:
                    raise
                self._closed.wait(min(5.0, 0.2 * 2**failures))

    def _watch(self, selector: str, version: str) -> str | None:
        """One watch request: "" when the Job finished or went, None to relist, else the version reached."""
        response = cast(HTTPResponse, self.batch.list_namespaced_job(  # raw: _preload_content=False
            self.namespace, field_selector=selector, resource_version=version, watch=True,
            allow_watch_bookmarks=True, timeout_seconds=self.watch_timeout_secs, _preload_content=False,
            _request_timeout=(10, self.watch_timeout_secs + 30),
        ))
        with self._watches_lock:
            self._watches.add(response)
        try:
            if self._closed.is_set():  # closed while the watch was being answered: ``close`` missed it
                return None
            for raw in _iter_lines(response):
                if not raw.strip():
                    continue
                event = json.loads(raw)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return None  # "too old resource version": relist
                    raise ApiException(status=obj.get("code"), reason=f"{obj.get('reason')}: {obj.get('message')}")
                if kind == "DELETED":
                    return ""
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if kind in ("ADDED", "MODIFIED") and (job_finished(obj) or obj["metadata"].get("deletionTimestamp")):
                    return ""
            return version
        finally:
            with self._watches_lock:
                self._watches.discard(response)
            with contextlib.suppress(Exception):
                response.close()
                response.release_conn()

    def logs(self, container_id: str, since_ns: int | None, follow: bool) -> KubernetesLogStream:
        if self._get_job(container_id) is None and not self._job_pods(container_id):
            raise NotFound(f"Job {container_id} and its pods are gone from namespace {self.namespace}.")
        return KubernetesLogStream(self, container_id, since_ns, follow)

    def list(self, labels: dict[str, str]) -> list[ContainerState]:
        selectable, _ = split_labels(labels)
        selector = ",".join(f"{key}={value}" for key, value in selectable.items())
        jobs = self._call(self.batch.list_namespaced_job, self.namespace, label_selector=selector)
        pods = self._call(self.core.list_namespaced_pod, self.namespace, label_selector=selector)
        by_job: dict[str, list[dict[str, Any]]] = {}
        for pod in pods.get("items") or []:
            pod_labels = pod["metadata"].get("labels") or {}
            owner = next((pod_labels[key] for key in POD_JOB_LABELS if key in pod_labels), None)
            if owner:
                by_job.setdefault(owner, []).append(pod)
        states = []
        for job in jobs.get("items") or []:
            meta = job["metadata"]
            found = merged_labels(meta)
            if any(found.get(key) != value for key, value in labels.items()):
                continue
            mine = sorted((p for p in by_job.get(meta["name"], []) if _owned_by(p, meta.get("uid"))), key=_pod_order)
            states.append(self._state(job, mine))
        return states

    def disk_usage(self, container_id: str) -> int:
        return 0  # the kubelet enforces ephemeral-storage itself

    def disk_quota_supported(self, image: str) -> bool:
        return True

    def memory_usage(self, container_id: str) -> int | None:
        return None

    def cpu_usage_ns(self, container_id: str) -> int | None:
        return None

    # -- images -----------------------------------------------------------------------------------

    def _image_backend(self, what: str) -> Backend:
        if self.images is None:
            raise EngineUnavailable(
                f"Cannot {what}: the Kubernetes backend builds images with a local Docker engine, and none "
                "was given (KubernetesBackend(images=DockerBackend(...))). Build and push images elsewhere, "
                "or configure a Docker engine for builds."
            )
        return self.images

    def build_image(self, context_dir: str, tag: str, dockerfile: str, memory_mb: int, buildargs: dict[str, str],
                    labels: dict[str, str], on_log: Callable[[str], None], network: bool = True) -> str:
        return self._image_backend("build an image").build_image(
            context_dir, tag=tag, dockerfile=dockerfile, memory_mb=memory_mb, buildargs=buildargs, labels=labels,
            on_log=on_log, network=network,
        )

    def image_exists(self, image: str) -> bool:
        return True if self.images is None else self.images.image_exists(image)

    def pull_image(self, image: str) -> str | None:
        return "no Docker engine for images is configured" if self.images is None else self.images.pull_image(image)

    def image_labels(self, image: str) -> dict[str, str]:
        return {} if self.images is None else self.images.image_labels(image)

    def image_id(self, image: str) -> str:
        image_id = getattr(self.images, "image_id", None)
        return image_id(image) if image_id is not None else image

    def remove_image(self, image: str) -> None:
        if self.images is not None:
            self.images.remove_image(image)

    def push_image(self, image: str, repository: str) -> str:
        images = self._image_backend("push an image")
        push: Callable[[str, str], str] | None = getattr(images, "push_image", None)
        if push is None:
            raise EngineUnavailable(f"The image backend {type(images).__name__} cannot push images.")
        return push(image, repository)


__all__ = ["SAMPLE_NETWORK_POLICY", "KubernetesBackend", "KubernetesLogStream", "job_name", "job_state", "split_labels"]
