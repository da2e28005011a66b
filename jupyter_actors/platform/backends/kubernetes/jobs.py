"""A run as a Kubernetes Job: names, labels, times, and the Job and its pods read as a ContainerState."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import re
from typing import Any

from ..base import ContainerSpec, ContainerState, parse_timestamp_ns

log = logging.getLogger(__name__)

#: The container's name inside each run's pod.
CONTAINER = "actor"
#: Annotation holding the original ``spec.name`` (the Job name is a DNS-1123 form of it).
ANNOTATION_NAME = "jupyter-actors/container-name"
#: Annotation listing the label keys whose values were stored as annotations.
ANNOTATION_MOVED = "jupyter-actors/annotated-labels"
#: Labels the Job controller puts on its pods (``job-name`` on every version, the other since 1.27).
POD_JOB_LABELS = ("job-name", "batch.kubernetes.io/job-name")

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


def merged_labels(metadata: dict[str, Any]) -> dict[str, str]:
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


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Conditions whose status is "True", by type."""
    found = (obj.get("status") or {}).get("conditions") or []
    return {c["type"]: c for c in found if c.get("status") == "True"}


def job_finished(job: dict[str, Any]) -> bool:
    conditions = _conditions(job)
    return "Complete" in conditions or "Failed" in conditions


def _container_status(pod: dict[str, Any] | None) -> dict[str, Any]:
    statuses: list[dict[str, Any]] = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name") == CONTAINER:
            return status
    return {}


def _terminated(pod: dict[str, Any] | None) -> dict[str, Any] | None:
    return (_container_status(pod).get("state") or {}).get("terminated")


def _disrupted(pod: dict[str, Any]) -> bool:
    return "DisruptionTarget" in _conditions(pod)


def _pod_done(pod: dict[str, Any]) -> bool:
    """The container has exited or the pod ended (possibly without ever running)."""
    phase = (pod.get("status") or {}).get("phase")
    return _terminated(pod) is not None or phase in ("Succeeded", "Failed")


def _waiting_to_start(pod: dict[str, Any]) -> bool:
    state = _container_status(pod).get("state") or {}
    return not _pod_done(pod) and "running" not in state


def _pod_order(pod: dict[str, Any]) -> tuple[Any, ...]:
    """Oldest first. Creation times have second precision; within a second the replaced (disrupted)
    pods came first, since the Job controller creates a replacement only after a pod failed."""
    meta = pod.get("metadata") or {}
    return (meta.get("creationTimestamp") or "", 0 if _disrupted(pod) else 1,
            (_terminated(pod) or {}).get("finishedAt") or "~", meta.get("name", ""))


def _owned_by(pod: dict[str, Any], uid: str | None) -> bool:
    if not uid:
        return True
    owners = (pod.get("metadata") or {}).get("ownerReferences") or []
    return not owners or any(owner.get("uid") == uid for owner in owners)


def job_state(job: dict[str, Any], pods: list[dict[str, Any]]) -> ContainerState:
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
    error = None
    waiting = state.get("waiting") or {}
    if waiting.get("reason") in CANNOT_START | CANNOT_PULL:
        reason = f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
        error = f"The cluster cannot start the container: {reason}"
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


def _container_port(pod_or_template: dict[str, Any]) -> int | None:
    for container in (pod_or_template.get("spec") or {}).get("containers") or []:
        if container.get("name") == CONTAINER:
            for port in container.get("ports") or []:
                return int(port["containerPort"])
    return None


# -- the log stream ------------------------------------------------------------------------------------


# -- the Job object ---------------------------------------------------------------------------------


def job_body(spec: ContainerSpec, *, namespace: str, service_account: str | None = None,
             image_pull_secret: str | None = None, deadline_margin_secs: int = 60) -> dict[str, Any]:
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
        "securityContext": security_context(spec.user),
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
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    if image_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": image_pull_secret}]
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
    deadline = active_deadline(spec.timeout_at, deadline_margin_secs)
    if deadline is not None:
        job_spec["activeDeadlineSeconds"] = deadline
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": job_spec,
    }


def security_context(user: str | None) -> dict[str, Any]:
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


def active_deadline(timeout_at: dt.datetime | None, margin_secs: int) -> int | None:
    """Seconds from now to ``timeout_at`` plus a margin: the platform's own timer normally stops the run first."""
    if timeout_at is None:
        return None
    remaining = math.ceil((timeout_at - dt.datetime.now(dt.timezone.utc)).total_seconds())
    return max(1, remaining) + margin_secs
