"""Runs on a Kubernetes cluster: each run is a batch/v1 Job, through the official ``kubernetes`` client.

Why Jobs: a run is "one container that must finish", which is exactly a Job with ``backoffLimit: 0``
and ``restartPolicy: Never``. The cluster, not this process, schedules it (on any node with the
memory and CPU the run asked for), and the Job controller keeps it alive while the server is away: a
node drain or preemption is told apart from an actor failure by a ``podFailurePolicy`` (pods with a
``DisruptionTarget`` condition are ``Ignore``-d, i.e. replaced without counting as a failure; any
other non-zero exit fails the Job at once). The replacement pod's log continues the run's log, and
``ContainerState.disruptions`` counts the replacements.

How it maps onto the ``Backend`` protocol (the Docker backend is the reference):

* The "container id" is the Job name: ``spec.name`` lowercased (DNS-1123) plus a short hash of the
  original, so mixed-case run ids stay unique. ``create`` makes the Job suspended (``suspend: true``)
  and ``start`` resumes it, so create and start stay two steps as with Docker. A 409 on create adopts
  the existing Job. ``ContainerState.name`` is the original ``spec.name`` (kept in an annotation).
* Labels whose values are not valid Kubernetes label values (an ISO timestamp, an empty string) are
  stored as annotations instead; ``inspect`` and ``list`` return both merged, as they were passed.
* Limits: ``resources.limits == resources.requests`` for memory, ``ephemeral-storage`` (the kubelet
  enforces the disk limit, unlike overlay2 on ext4 under Docker) and, with ``cpu_mode`` "quota", CPU
  in millicores. With ``cpu_mode`` "shares" (a proportional weight, no hard cap) CPU is only
  requested, which is what the CPU weight of Docker's ``cpu_shares`` means on a node.
* ``activeDeadlineSeconds`` is the run's timeout (label ``jupyter-actors.timeout-at``) plus a margin:
  a backstop for when the server is down; the platform's own timer normally stops the run first.
  Kubernetes counts it from the moment the Job is resumed.
* ``stop`` deletes the Job (propagation Background, so nothing re-creates its pod) and then deletes
  its pods with the requested grace period: the grace period of a Job's deletion is not passed on to
  its pods by the garbage collector, which would use the pod's own 30 s default.
* A pod that cannot start (an invalid image name, an image that cannot be pulled for
  ``image_pull_grace_secs``, a container config error) would wait for its deadline: the run's
  following log reader records the cluster's reason on the Job and deletes the pod, so the Job fails
  (``backoffLimit: 0``) and ``ContainerState.error`` carries the reason. A Job that failed because of
  a disruption it did not absorb (a cluster without ``podFailurePolicy``) is reported ``lost``.
* Logs come from the pod with ``timestamps=true``; the kubelet's ``sinceTime`` has only second
  precision (and the Python client does not expose it), so the log is read with a generous
  ``sinceSeconds`` and lines before ``since_ns`` are dropped here.

How it differs from Docker:

* Web servers: ``inspect`` returns the pod IP as ``web_host`` and the container port as ``host_port``
  (nothing is published on 127.0.0.1). The server must therefore run inside the cluster or on a host
  with routes to the pod network.
* PIDs: the pids limit is a kubelet setting (``podPidsLimit``) for every pod of a node; a Job cannot
  set its own, so ``ContainerLimits.pids`` is not applied.
* Networks: there is no per-run network. Pods can reach each other unless a NetworkPolicy forbids it;
  ``SAMPLE_NETWORK_POLICY`` below isolates the runs the way the Docker backend's bridge without
  inter-container traffic does (needs a CNI plugin that enforces NetworkPolicy, e.g. Calico, Cilium).
  There is no ``ensure_network``/``network_gateway``: the platform checks for them with ``hasattr``.
* Images: nodes pull them. ``build_image``/``push_image`` delegate to a local Docker backend
  (``images``); without one, every image is taken to exist (pre-distributed or pulled by nodes).
* The server needs, in its namespace: jobs (create, get, list, watch, patch, delete), pods (get,
  list, delete) and pods/log (get).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..clock import parse_iso
from ..errors import EngineUnavailable, NotFound
from .base import Backend, ContainerSpec, ContainerState, LogLine
from .docker import parse_timestamp_ns

try:  # an optional dependency: pip install 'jupyter-actors[kubernetes]'
    import kubernetes
    import urllib3
    from kubernetes.client.exceptions import ApiException
except ImportError:  # pragma: no cover - exercised only without the extra
    kubernetes = None  # type: ignore[assignment]
    urllib3 = None  # type: ignore[assignment]

    class ApiException(Exception):  # type: ignore[no-redef]
        status: int | None = None


log = logging.getLogger(__name__)

#: The container's name inside each run's pod.
CONTAINER = "actor"
#: Annotation holding the original ``spec.name`` (the Job name is a DNS-1123 form of it).
ANNOTATION_NAME = "jupyter-actors/container-name"
#: Annotation listing the label keys whose values were stored as annotations.
ANNOTATION_MOVED = "jupyter-actors/annotated-labels"
LABEL_TIMEOUT_AT = "jupyter-actors.timeout-at"
#: Labels the Job controller puts on its pods (``job-name`` on every version, the other since 1.27).
POD_JOB_LABELS = ("job-name", "batch.kubernetes.io/job-name")

#: Annotation with the reason the backend failed a Job whose pod could not start.
ANNOTATION_ERROR = "jupyter-actors/error"
#: Waiting reasons of a container that will not start without a change to the Job.
CANNOT_START = frozenset({"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"})
#: Waiting reasons of a container whose image cannot be pulled (yet): fatal after ``image_pull_grace_secs``.
CANNOT_PULL = frozenset({"ErrImagePull", "ImagePullBackOff"})
#: Reasons a pod ended for its node, not its program (``status.reason``).
NODE_REASONS = frozenset({"NodeLost", "NodeShutdown", "Shutdown", "Terminated", "UnexpectedAdmissionError"})

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_OFFSET = re.compile(r"^(.*?)([+-])(\d\d):?(\d\d)$")

#: Isolates runs from each other the way the Docker backend's bridge (no inter-container traffic)
#: does: a run's pod takes traffic only from the server's pods and may reach the server, DNS and
#: the internet, but no other pod or private address (nor the cloud metadata endpoint). Adapt the
#: server's selector (``app: jupyter-actors-server`` here) and apply it in the runs' namespace.
SAMPLE_NETWORK_POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: jupyter-actors-runs
spec:
  podSelector:
    matchExpressions:
      - {key: jupyter-actors.instance, operator: Exists}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - podSelector:
            matchLabels: {app: jupyter-actors-server}
  egress:
    - to:
        - podSelector:
            matchLabels: {app: jupyter-actors-server}
    - to:
        - namespaceSelector: {}
          podSelector:
            matchLabels: {k8s-app: kube-dns}
      ports:
        - {protocol: UDP, port: 53}
        - {protocol: TCP, port: 53}
    - to:
        - ipBlock:
            cidr: 0.0.0.0/0
            except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, 100.64.0.0/10]
"""


# -- names, labels, times ---------------------------------------------------------------------------


def job_name(spec_name: str) -> str:
    """A DNS-1123 label (lowercase, <= 63 characters) derived deterministically from ``spec_name``.

    The hash is of the original, so names differing only in case (run ids are mixed-case) differ.
    """
    digest = hashlib.sha256(spec_name.encode("utf-8")).hexdigest()[:10]
    base = re.sub(r"[^a-z0-9-]+", "-", spec_name.lower()).strip("-")
    base = base[: 63 - len(digest) - 1].rstrip("-")
    return f"{base}-{digest}" if base else f"run-{digest}"


def is_label_value(value: str) -> bool:
    """A non-empty valid Kubernetes label value (empty ones are legal but go to annotations here)."""
    return len(value) <= 63 and bool(_LABEL_VALUE.match(value))


def split_labels(labels: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(labels, annotations): values that cannot be label values become annotations."""
    valid = {key: value for key, value in labels.items() if is_label_value(value)}
    moved = {key: value for key, value in labels.items() if key not in valid}
    annotations = dict(moved)
    if moved:
        annotations[ANNOTATION_MOVED] = ",".join(sorted(moved))
    return valid, annotations


def merged_labels(metadata: dict) -> dict[str, str]:
    """The labels as the caller passed them: real labels plus those stored as annotations."""
    labels = dict(metadata.get("labels") or {})
    annotations = metadata.get("annotations") or {}
    for key in filter(None, (annotations.get(ANNOTATION_MOVED) or "").split(",")):
        if key in annotations:
            labels[key] = annotations[key]
    return labels


def timestamp_ns(text: str) -> int:
    """RFC 3339 (``...Z`` or with an offset, fraction optional) to integer nanoseconds."""
    if text.endswith("Z"):
        return parse_timestamp_ns(text)
    match = _OFFSET.match(text)
    if not match:
        raise ValueError(f"unexpected timestamp {text!r}")
    base, sign, hours, minutes = match.groups()
    offset = (int(hours) * 3600 + int(minutes) * 60) * (1 if sign == "+" else -1)
    return parse_timestamp_ns(base + "Z") - offset * 1_000_000_000


def _time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromtimestamp(timestamp_ns(text) / 1e9, tz=dt.timezone.utc)
    except ValueError:
        return None


# -- reading Job and Pod objects (plain JSON dicts, as the API reference documents them) --------------


def _conditions(obj: dict) -> dict[str, dict]:
    """Conditions whose status is "True", by type."""
    found = (obj.get("status") or {}).get("conditions") or []
    return {c["type"]: c for c in found if c.get("status") == "True"}


def job_finished(job: dict) -> bool:
    conditions = _conditions(job)
    return "Complete" in conditions or "Failed" in conditions


def _container_status(pod: dict | None) -> dict:
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return status
    return {}


def _terminated(pod: dict | None) -> dict | None:
    return (_container_status(pod).get("state") or {}).get("terminated")


def _disrupted(pod: dict) -> bool:
    return "DisruptionTarget" in _conditions(pod)


def _pod_done(pod: dict) -> bool:
    """The container has exited or the pod ended (possibly without ever running)."""
    phase = (pod.get("status") or {}).get("phase")
    return _terminated(pod) is not None or phase in ("Succeeded", "Failed")


def _waiting_to_start(pod: dict) -> bool:
    state = _container_status(pod).get("state") or {}
    return not _pod_done(pod) and "running" not in state


def _pod_order(pod: dict) -> tuple:
    """Oldest first. Creation times have second precision; within a second the replaced (disrupted)
    pods came first, since the Job controller creates a replacement only after a pod failed."""
    meta = pod.get("metadata") or {}
    return (meta.get("creationTimestamp") or "", 0 if _disrupted(pod) else 1,
            (_terminated(pod) or {}).get("finishedAt") or "~", meta.get("name", ""))


def _owned_by(pod: dict, uid: str | None) -> bool:
    if not uid:
        return True
    owners = (pod.get("metadata") or {}).get("ownerReferences") or []
    return not owners or any(owner.get("uid") == uid for owner in owners)


def _iter_lines(response) -> Iterator[bytes]:
    """Lines of a streamed urllib3 response, as they arrive (chunked) or block by block."""
    pending = b""
    chunks = response.stream(amt=None) if getattr(response, "chunked", False) else response.stream(65536)
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines
    if pending:
        yield pending


def _shutdown(response) -> None:
    """Unblock a thread reading ``response``: shut its socket down, then close it."""
    sock = None
    connection = getattr(response, "connection", None) or getattr(response, "_connection", None)
    if connection is not None:
        sock = getattr(connection, "sock", None)
    if sock is None:
        try:
            sock = response._fp.fp.raw._sock  # http.client response over a socket
        except AttributeError:
            sock = None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):  # closing a dead connection must not raise
        response.close()


_STREAM_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, AttributeError)
if urllib3 is not None:
    _STREAM_ERRORS += (urllib3.exceptions.HTTPError,)


def job_state(job: dict, pods: list[dict]) -> ContainerState:
    """A Job and its pods (oldest first) as the platform's ContainerState."""
    meta = job["metadata"]
    status = job.get("status") or {}
    conditions = _conditions(job)
    pod = pods[-1] if pods else None
    container = _container_status(pod)
    state = container.get("state") or {}
    terminated = state.get("terminated")
    suspended = bool((job.get("spec") or {}).get("suspend"))
    deleting = bool(meta.get("deletionTimestamp"))
    running = not suspended and not deleting and "Complete" not in conditions and "Failed" not in conditions
    phase = ((pod or {}).get("status") or {}).get("phase")
    if suspended:
        word = "created"
    elif "Complete" in conditions:
        word = "succeeded"
    elif "Failed" in conditions:
        word = "failed"
    elif deleting:
        word = "deleting"
    elif phase == "Running":
        word = "running"
    else:
        word = "pending"
    ended = terminated if terminated and not running else None
    error = (meta.get("annotations") or {}).get(ANNOTATION_ERROR)
    waiting = state.get("waiting") or {}
    if not error and waiting.get("reason") in CANNOT_START | CANNOT_PULL:
        error = f"The cluster cannot start the container: {waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
    pod_status = (pod or {}).get("status") or {}
    if not error and pod_status.get("reason") == "Evicted" and "ephemeral" in (pod_status.get("message") or ""):
        error = f"The run used more than its disk limit: {pod_status['message']}"
    lost = None
    if "Failed" in conditions and pod is not None and not error and (
            _disrupted(pod) or pod_status.get("reason") in NODE_REASONS):
        why = (_conditions(pod).get("DisruptionTarget") or {}).get("reason") or pod_status.get("reason")
        lost = f"its pod was disrupted ({why}) and the cluster did not replace it"
    finished_at = _time((ended or {}).get("finishedAt"))
    if finished_at is None and not running and not suspended:
        finished_at = _time(status.get("completionTime") or (conditions.get("Failed") or {}).get("lastTransitionTime"))
    started = (state.get("running") or terminated or {}).get("startedAt") or status.get("startTime")
    web_host = host_port = None
    if running and phase == "Running" and (pod or {}).get("status", {}).get("podIP"):
        web_host = pod["status"]["podIP"]  # type: ignore[index]
        host_port = _container_port(pod or job["spec"]["template"])
    return ContainerState(
        id=meta["name"],
        name=(meta.get("annotations") or {}).get(ANNOTATION_NAME, meta["name"]),
        running=running,
        exit_code=ended.get("exitCode") if ended else None,
        oom_killed=bool(ended and ended.get("reason") == "OOMKilled"),
        started_at=_time(started),
        finished_at=finished_at,
        labels=merged_labels(meta),
        status=word,
        host_port=host_port,
        created_at=_time(meta.get("creationTimestamp")),
        web_host=web_host,
        deadline_exceeded=(conditions.get("Failed") or {}).get("reason") == "DeadlineExceeded",
        lost=lost,
        error=error,
        disruptions=sum(1 for p in pods if _disrupted(p)),
    )


def _container_port(pod_or_template: dict) -> int | None:
    for container in (pod_or_template.get("spec") or {}).get("containers") or []:
        if container.get("name") == CONTAINER:
            for port in container.get("ports") or []:
                return int(port["containerPort"])
    return None


# -- the log stream ------------------------------------------------------------------------------------


class KubernetesLogStream:
    """LogLines of a Job's pods in order (a replaced pod's, then its replacement's).

    ``close()`` from another thread unblocks the reader (the response's socket is shut down).
    """

    def __init__(self, backend: KubernetesBackend, name: str, since_ns: int | None, follow: bool) -> None:
        self._backend = backend
        self._name = name
        self._since = since_ns or 0
        self._follow = follow
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._response = None

    def __iter__(self) -> Iterator[LogLine]:
        try:
            yield from self._lines()
        except Exception:
            if not self._closed.is_set():
                raise
        finally:
            self._forget_response()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            response, self._response = self._response, None
        if response is not None:
            _shutdown(response)

    # --

    def _pause(self) -> bool:
        """Wait one poll interval; False when closed meanwhile."""
        return not self._closed.wait(self._backend.poll_interval_secs)

    def _lines(self) -> Iterator[LogLine]:
        done: set[str] = set()
        followed_to_end: set[str] = set()
        given_up: set[str] = set()
        position: dict[str, tuple[int, int]] = {}  # pod -> (last ts yielded, lines yielded at it)
        while not self._closed.is_set():
            pods = [p for p in self._backend._job_pods(self._name) if p["metadata"]["name"] not in done]
            if not pods:
                if not self._follow or self._backend._job_over(self._name):
                    return
                if not self._pause():
                    return
                continue
            pod = pods[0]
            name = pod["metadata"]["name"]
            if _waiting_to_start(pod):
                if not self._follow:
                    return
                problem = None if name in given_up else self._backend._cannot_start(pod)
                if problem:  # the run would wait for its deadline: fail it now, with the cluster's reason
                    self._backend._fail_job(self._name, problem)
                    given_up.add(name)
                if not self._pause():
                    return
                continue
            finished = _pod_done(pod)
            never_ran = not {"running", "terminated"} & set(_container_status(pod).get("state") or {})
            if finished and (name in followed_to_end or never_ran or self._ended_before_since(pod)):
                done.add(name)
                continue
            if name in followed_to_end and not self._pause():
                return  # its stream ended but it is not seen finished yet: give the kubelet a moment
            follow = self._follow and not finished
            # A pod read again (its stream broke while it ran) repeats what was yielded: skip that.
            resume_ts, resume_count = position.get(name, (0, 0))
            response = self._open(name, follow, max(self._since, resume_ts))
            if response is None:  # not readable (waiting, gone): look again
                if not self._follow or finished:
                    done.add(name)
                elif not self._pause():
                    return
                continue
            ended = False
            skipping, to_skip = resume_ts > 0, resume_count
            last_ts, count = resume_ts, resume_count
            try:
                for raw in _iter_lines(response):
                    line = self._parse(raw, last_ts)
                    if line is None or line.ts_ns < self._since:
                        continue
                    if skipping:
                        if line.ts_ns < resume_ts:
                            continue
                        if line.ts_ns == resume_ts and to_skip > 0:
                            to_skip -= 1
                            continue
                        skipping = False
                    last_ts, count = (last_ts, count + 1) if line.ts_ns == last_ts else (line.ts_ns, 1)
                    position[name] = (last_ts, count)
                    yield line
                ended = True
            except _STREAM_ERRORS:
                if self._closed.is_set():
                    return
            finally:
                self._forget_response()
            if self._closed.is_set():
                return
            if not follow:
                done.add(name)
            elif ended:
                followed_to_end.add(name)  # done once the pod is seen finished; read again if it runs

    def _ended_before_since(self, pod: dict) -> bool:
        """Every line of a pod that finished more than a second before ``since`` is older than it."""
        finished = _time((_terminated(pod) or {}).get("finishedAt"))
        return bool(self._since and finished and finished.timestamp() * 1e9 + 1e9 <= self._since)

    def _open(self, pod: str, follow: bool, since_ns: int):
        kwargs: dict[str, Any] = {"container": CONTAINER, "follow": follow, "timestamps": True,
                                  "_preload_content": False}
        if since_ns:
            age = time.time() - since_ns / 1e9
            kwargs["since_seconds"] = max(1, math.ceil(age) + self._backend.log_since_margin_secs)
        if not follow:  # a followed log may stay quiet for hours: no read timeout then
            kwargs["_request_timeout"] = (10, 120)
        try:
            response = self._backend.core.read_namespaced_pod_log(pod, self._backend.namespace, **kwargs)
        except ApiException as exc:
            if exc.status in (400, 404):  # waiting to start (ContainerCreating) or gone
                return None
            raise
        with self._lock:
            if self._closed.is_set():
                _shutdown(response)
                return None
            self._response = response
        return response

    def _forget_response(self) -> None:
        with self._lock:
            response, self._response = self._response, None
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()
                response.release_conn()

    @staticmethod
    def _parse(raw: bytes, previous_ts: int) -> LogLine | None:
        stamp, _, text = raw.partition(b" ")
        text_str = text.decode("utf-8", errors="replace").rstrip("\r")
        try:
            return LogLine(timestamp_ns(stamp.decode("ascii", errors="replace")), text_str)
        except ValueError:
            # Not a timestamped line (the kubelet writes some errors in-band): keep it in place.
            whole = raw.decode("utf-8", errors="replace").rstrip("\r")
            return LogLine(previous_ts, whole) if previous_ts else None


# -- the backend -----------------------------------------------------------------------------------------


class KubernetesBackend:
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
        self._watches: set = set()
        self._watches_lock = threading.Lock()
        self._ping()

    @staticmethod
    def _load_client(kubeconfig: str | None, context: str | None):
        from kubernetes import config as kube_config

        configuration = kubernetes.client.Configuration()
        problems = []
        if kubeconfig is None and context is None:
            try:
                kube_config.load_incluster_config(client_configuration=configuration)
                return kubernetes.client.ApiClient(configuration)
            except Exception as exc:  # noqa: BLE001 - not in a pod: try a kubeconfig next
                problems.append(f"not in a cluster ({exc})")
        path = kubeconfig or os.environ.get("KUBECONFIG") or None
        try:
            kube_config.load_kube_config(config_file=path, context=context, client_configuration=configuration,
                                         persist_config=False)
        except Exception as exc:  # noqa: BLE001 - any failure here means "no cluster configured"
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
        except Exception as exc:  # noqa: BLE001 - unreachable, unauthorised, no such namespace...
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
    def _call(function: Callable, *args: Any, **kwargs: Any) -> dict:
        """One API call answered as the plain JSON object the API reference documents."""
        kwargs.setdefault("_request_timeout", (10, 60))
        response = function(*args, _preload_content=False, **kwargs)
        try:
            data = response.data
        finally:
            response.release_conn()
        return json.loads(data) if data else {}

    def _get_job(self, name: str) -> dict | None:
        try:
            return self._call(self.batch.read_namespaced_job, name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _job_pods(self, name: str, uid: str | None = None) -> list[dict]:
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

    def _cannot_start(self, pod: dict) -> str | None:
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

    def _fail_job(self, name: str, message: str) -> None:
        """Record why, then delete the pod that cannot start: with ``backoffLimit: 0`` the Job fails."""
        try:
            self._call(self.batch.patch_namespaced_job, name, self.namespace,
                       {"metadata": {"annotations": {ANNOTATION_ERROR: message}}},
                       _content_type="application/merge-patch+json")
            for pod in self._job_pods(name):
                if not _pod_done(pod):
                    self._call(self.core.delete_namespaced_pod, pod["metadata"]["name"], self.namespace,
                               grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise
        log.warning("failing Job %s: %s", name, message)

    # -- containers -------------------------------------------------------------------------------

    def job_body(self, spec: ContainerSpec) -> dict:
        """The batch/v1 Job for ``spec`` (suspended: ``start`` resumes it)."""
        name = job_name(spec.name)
        labels, annotations = split_labels(spec.labels)
        annotations[ANNOTATION_NAME] = spec.name
        limits = spec.limits
        requests = {
            "cpu": f"{max(1, round(limits.cpu_cores * 1000))}m",
            "memory": f"{limits.memory_mb}Mi",
            "ephemeral-storage": f"{limits.disk_mb}Mi",
        }
        hard = dict(requests) if limits.cpu_mode == "quota" else {k: v for k, v in requests.items() if k != "cpu"}
        container: dict[str, Any] = {
            "name": CONTAINER,
            "image": spec.image,
            "imagePullPolicy": "IfNotPresent",
            "env": [{"name": key, "value": str(value)} for key, value in spec.env.items()],
            "resources": {"limits": hard, "requests": requests},
            "securityContext": self._security_context(spec.user),
        }
        if spec.command:
            container["args"] = list(spec.command)  # like Docker's command: replaces CMD, keeps ENTRYPOINT
        if spec.publish_port:
            container["ports"] = [{"name": "web", "containerPort": int(spec.publish_port), "protocol": "TCP"}]
        pod_spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "containers": [container],
        }
        if self.service_account:
            pod_spec["serviceAccountName"] = self.service_account
        if self.image_pull_secret:
            pod_spec["imagePullSecrets"] = [{"name": self.image_pull_secret}]
        job_spec: dict[str, Any] = {
            "suspend": True,
            "backoffLimit": 0,
            "completions": 1,
            "parallelism": 1,
            "podFailurePolicy": {"rules": [
                # A drained, preempted or lost node: the Job controller replaces the pod, uncounted.
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                # The actor failed: the Job fails at once.
                {"action": "FailJob", "onExitCodes": {"containerName": CONTAINER, "operator": "NotIn", "values": [0]}},
            ]},
            "template": {
                "metadata": {"labels": dict(labels), "annotations": {ANNOTATION_NAME: spec.name}},
                "spec": pod_spec,
            },
        }
        deadline = self._active_deadline(spec.labels.get(LABEL_TIMEOUT_AT))
        if deadline is not None:
            job_spec["activeDeadlineSeconds"] = deadline
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels, "annotations": annotations},
            "spec": job_spec,
        }

    @staticmethod
    def _security_context(user: str | None) -> dict:
        context: dict[str, Any] = {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        if user:
            uid, _, gid = user.partition(":")
            if uid.isdigit():
                context["runAsUser"] = int(uid)
            else:
                log.warning("user %r is not numeric: Kubernetes runs the image's own (non-root) user", user)
            if gid.isdigit():
                context["runAsGroup"] = int(gid)
        return context

    def _active_deadline(self, timeout_at: str | None) -> int | None:
        if not timeout_at:
            return None
        try:
            when = parse_iso(timeout_at)
        except ValueError:
            log.warning("ignoring an unreadable %s %r", LABEL_TIMEOUT_AT, timeout_at)
            return None
        remaining = math.ceil((when - dt.datetime.now(dt.timezone.utc)).total_seconds())  # type: ignore[operator]
        return max(1, remaining) + self.active_deadline_margin_secs

    def create(self, spec: ContainerSpec) -> str:
        body = self.job_body(spec)
        name = body["metadata"]["name"]
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
        job = self._get_job(container_id)
        if job is None:
            return None
        return job_state(job, self._job_pods(container_id, job["metadata"].get("uid")))

    def wait(self, container_id: str) -> None:
        """Block until the Job has finished (Complete or Failed) or is gone.

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
                version = listing["metadata"]["resourceVersion"]
                while version is not None and not self._closed.is_set():
                    version = self._watch(selector, version)
                    if version == "":
                        return
                failures = 0
            except ApiException as exc:
                if exc.status != 410:
                    raise
            except _STREAM_ERRORS:
                if self._closed.is_set():
                    return
                failures += 1
                if failures > 5:
                    raise
                self._closed.wait(min(5.0, 0.2 * 2**failures))

    def _watch(self, selector: str, version: str) -> str | None:
        """One watch request: "" when the Job finished or went, None to relist, else the version reached."""
        response = self.batch.list_namespaced_job(
            self.namespace, field_selector=selector, resource_version=version, watch=True,
            allow_watch_bookmarks=True, timeout_seconds=self.watch_timeout_secs, _preload_content=False,
            _request_timeout=(10, self.watch_timeout_secs + 30),
        )
        with self._watches_lock:
            self._watches.add(response)
        try:
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
        by_job: dict[str, list[dict]] = {}
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
            states.append(job_state(job, mine))
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
        pull = getattr(self.images, "pull_image", None)
        return pull(image) if pull is not None else "no Docker engine for images is configured"

    def image_labels(self, image: str) -> dict[str, str]:
        labels = getattr(self.images, "image_labels", None)
        return labels(image) if labels is not None else {}

    def image_id(self, image: str) -> str:
        image_id = getattr(self.images, "image_id", None)
        return image_id(image) if image_id is not None else image

    def remove_image(self, image: str) -> None:
        if self.images is not None:
            self.images.remove_image(image)

    def push_image(self, image: str, repository: str) -> str:
        images = self._image_backend("push an image")
        push = getattr(images, "push_image", None)
        if push is None:
            raise EngineUnavailable(f"The image backend {type(images).__name__} cannot push images.")
        return push(image, repository)


__all__ = ["SAMPLE_NETWORK_POLICY", "KubernetesBackend", "KubernetesLogStream", "job_name", "job_state", "split_labels"]
