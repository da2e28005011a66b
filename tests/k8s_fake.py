"""A small fake of the Kubernetes API server, for tests/test_kubernetes_backend.py.

HAND-MADE, NOT RECORDINGS: every object this fake serves (batch/v1 Job, v1 Pod, v1 Status, JobList
and PodList, watch events, the pod log's ``timestamps=true`` lines) was written by hand from the
Kubernetes API reference (https://kubernetes.io/docs/reference/kubernetes-api/) and the Job and
API-concepts documentation. Nothing here was captured from a real cluster; where this file guesses,
it says so. The same holds for tests/fixtures/kubernetes/.

It serves, on 127.0.0.1 and a free port, only what the Kubernetes backend calls:

    GET/POST           /apis/batch/v1/namespaces/{ns}/jobs            list (labelSelector, fieldSelector,
                                                                      limit/continue), watch=true, create
    GET/PATCH/DELETE   /apis/batch/v1/namespaces/{ns}/jobs/{name}
    GET                /api/v1/namespaces/{ns}/pods                   list (labelSelector)
    GET/DELETE         /api/v1/namespaces/{ns}/pods/{name}
    GET                /api/v1/namespaces/{ns}/pods/{name}/log        follow, timestamps, sinceSeconds, container

What it simulates, driven by the Job it received: the API server's validation of a Job (422 Invalid
with causes, like the real one, for the rules listed in ``validate_job``), defaulting (selector,
controller labels, backoffLimit 6, ...), 409 AlreadyExists, 404 NotFound, resource versions and a
watch history; the Job controller (a suspended Job gets no pod; resuming it creates one; the
``podFailurePolicy`` rules are evaluated in order, then ``backoffLimit``; ``DeadlineExceeded``;
garbage collection of a deleted Job's pods); the kubelet (a pod is Pending/ContainerCreating for one
step, then Running; its log lines get RFC3339Nano timestamps; a deleted pod's container ends with 137
or, given a grace period, 143). What the container does is chosen by its env var ``FAKE_SCENARIO``:

    echo:N     N lines "line 1".."line N", one per step, then exit 0 (default: echo:1)
    burst:N    N lines "burst 1".."burst N" within one millisecond, then exit 0
    exit:C     one line, then exit code C
    oom        one line, then OOMKilled (exit 137)
    sleep      one line "sleeping", then runs until its pod is deleted
    pending    never starts (the image cannot be pulled: ImagePullBackOff); deleting its pod fails the Job
    disrupt    the first pod prints two lines and is evicted (condition DisruptionTarget, exit 143); the
               Job controller then applies the podFailurePolicy: with an Ignore rule for
               DisruptionTarget a second pod runs, prints two lines and exits 0
    deadline   one line; if the Job has activeDeadlineSeconds, the deadline passes three steps later
               (the fake's clock is fast: the value itself is not waited for)

What it does not do: authentication, RBAC, admission, scheduling or resources (nothing is enforced),
namespaces as objects, strategic-merge semantics beyond a JSON merge patch of the fields the backend
patches, watches of pods, field validation of unknown fields (the real server warns by default; the
kubernetes 37 client used here rejects unknown fields before sending), and the many Job features the
backend does not use (indexed jobs, successPolicy, parallelism > 1, ...).

``FakeKubernetes.expire_next_watch()`` makes the next watch answer 410 Gone ("too old resource
version"), as an ERROR event (the usual way) or as an HTTP 410, to test relisting.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable

import tornado.httpserver
import tornado.iostream
import tornado.locks
import tornado.netutil
import tornado.web

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_SUFFIXES = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_POD_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of generated name suffixes


def rfc3339(ts: float | None = None) -> str:
    """Object timestamps (metadata, conditions, container states) have second precision."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if ts is None else ts))


def log_stamp(ts_ns: int) -> str:
    """The kubelet's log timestamp: RFC3339 with nine fraction digits, UTC."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def status_object(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    """A v1 Status as error responses and watch ERROR events carry it."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason}
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def quantity(text: object) -> float:
    match = _QUANTITY.match(str(text))
    if not match:
        raise ValueError(f"quantities must match the regular expression '{_QUANTITY.pattern}'")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


def label_key_errors(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if len(name) > 63 or not _LABEL_NAME.match(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                "with an alphanumeric character")
    return None


def validate_job(job: dict) -> list[dict]:
    """The API server's checks of a batch/v1 Job that a wrong body from the backend would hit."""
    causes: list[dict] = []

    def bad(field: str, message: str, reason: str = "FieldValueInvalid") -> None:
        causes.append({"reason": reason, "message": message, "field": field})

    if job.get("apiVersion") != "batch/v1" or job.get("kind") != "Job":
        bad("kind", "Invalid value: the body must be a batch/v1 Job")
    meta = job.get("metadata") or {}
    name = meta.get("name") or ""
    if not name:
        bad("metadata.name", "Required value: name or generateName is required", "FieldValueRequired")
    elif len(name) > 63 or not _DNS_LABEL.match(name):
        bad("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower case '
                             "alphanumeric characters or '-', and must start and end with an alphanumeric "
                             "character, at most 63 characters")
    for where, labels in (("metadata.labels", meta.get("labels") or {}),
                          ("spec.template.metadata.labels",
                           ((job.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {})):
        for key, value in labels.items():
            problem = label_key_errors(key)
            if problem:
                bad(where, f'Invalid value: "{key}": {problem}')
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                bad(f"{where}", f'Invalid value: "{value}": a valid label must be an empty string or consist '
                                "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                                "alphanumeric character")
    for key in (meta.get("annotations") or {}):
        problem = label_key_errors(key)
        if problem:
            bad("metadata.annotations", f'Invalid value: "{key}": {problem}')
    spec = job.get("spec") or {}
    for field in ("backoffLimit", "parallelism", "completions"):
        if field in spec and (not isinstance(spec[field], int) or spec[field] < 0):
            bad(f"spec.{field}", "Invalid value: must be greater than or equal to 0")
    if "activeDeadlineSeconds" in spec and (not isinstance(spec["activeDeadlineSeconds"], int)
                                            or spec["activeDeadlineSeconds"] <= 0):
        bad("spec.activeDeadlineSeconds", "Invalid value: must be greater than 0")
    pod = (spec.get("template") or {}).get("spec") or {}
    restart = pod.get("restartPolicy")
    if restart not in ("OnFailure", "Never"):
        bad("spec.template.spec.restartPolicy",
            f'Unsupported value: "{restart or ""}": supported values: "OnFailure", "Never"', "FieldValueNotSupported")
    containers = pod.get("containers") or []
    if not containers:
        bad("spec.template.spec.containers", "Required value", "FieldValueRequired")
    names = set()
    for index, container in enumerate(containers):
        where = f"spec.template.spec.containers[{index}]"
        if not _DNS_LABEL.match(container.get("name") or ""):
            bad(f"{where}.name", "Invalid value: a lowercase RFC 1123 label is required")
        names.add(container.get("name"))
        if not container.get("image"):
            bad(f"{where}.image", "Required value", "FieldValueRequired")
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        for kind, values in (("limits", limits), ("requests", requests)):
            for resource, value in values.items():
                try:
                    quantity(value)
                except ValueError as exc:
                    bad(f"{where}.resources.{kind}[{resource}]", f'Invalid value: "{value}": {exc}')
        for resource, value in requests.items():
            if resource in limits:
                try:
                    if quantity(value) > quantity(limits[resource]):
                        bad(f"{where}.resources.requests", f'Invalid value: "{value}": must be less than or '
                                                           f"equal to {resource} limit of {limits[resource]}")
                except ValueError:
                    pass
        for env in container.get("env") or []:
            if not env.get("name"):
                bad(f"{where}.env", "Required value: name", "FieldValueRequired")
    policy = spec.get("podFailurePolicy")
    if policy is not None:
        if restart != "Never":
            bad("spec.template.spec.restartPolicy",
                f'Invalid value: "{restart}": only "Never" is supported when podFailurePolicy is specified')
        for index, rule in enumerate(policy.get("rules") or []):
            where = f"spec.podFailurePolicy.rules[{index}]"
            if rule.get("action") not in ("FailJob", "Ignore", "Count", "FailIndex"):
                bad(f"{where}.action", f'Unsupported value: "{rule.get("action")}"', "FieldValueNotSupported")
            on_codes, on_conditions = rule.get("onExitCodes"), rule.get("onPodConditions")
            if (on_codes is None) == (on_conditions is None):
                bad(where, "Invalid value: specifying one of onExitCodes and onPodConditions is required")
            if on_codes is not None:
                values = on_codes.get("values") or []
                if on_codes.get("operator") not in ("In", "NotIn"):
                    bad(f"{where}.onExitCodes.operator", "Unsupported value", "FieldValueNotSupported")
                if not values or values != sorted(set(values)):
                    bad(f"{where}.onExitCodes.values", "Invalid value: must be ordered, unique and not empty")
                if on_codes.get("operator") == "In" and 0 in values:
                    bad(f"{where}.onExitCodes.values", "Invalid value: 0: must not be 0 for the In operator")
                if on_codes.get("containerName") not in (None, *names):
                    bad(f"{where}.onExitCodes.containerName", "Invalid value: must be one of the container names")
            for pattern in on_conditions or []:
                if not pattern.get("type"):
                    bad(f"{where}.onPodConditions.type", "Required value", "FieldValueRequired")
                if pattern.get("status", "True") not in ("True", "False", "Unknown"):
                    bad(f"{where}.onPodConditions.status", "Unsupported value", "FieldValueNotSupported")
    return causes


def label_match(labels: dict, selector: str) -> bool:
    for term in filter(None, (part.strip() for part in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = re.split("==?", term, maxsplit=1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def field_match(obj: dict, selector: str) -> bool:
    fields = {"metadata.name": obj["metadata"]["name"], "metadata.namespace": obj["metadata"]["namespace"]}
    for term in filter(None, (part.strip() for part in selector.split(","))):
        negate = "!=" in term
        key, value = re.split("!=|==?", term, maxsplit=1)
        if key not in fields:
            raise KeyError(key)
        if (fields[key] == value) == negate:
            return False
    return True


def merge_patch(target: dict, patch: dict) -> dict:
    """RFC 7386 JSON merge patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


class FakeKubernetes:
    """The fake API server with its simulated Job controller and kubelet (see the module docstring)."""

    def __init__(self, step_secs: float = 0.02) -> None:
        self.step = step_secs
        self.lock = threading.RLock()
        self.resource_version = 1000
        self.jobs: dict[tuple[str, str], dict] = {}
        self.pods: dict[tuple[str, str], dict] = {}
        self.logs: dict[tuple[str, str], list[tuple[int, str]]] = {}
        self.history: list[tuple[int, str, dict]] = []  # job watch events: (rv, type, object)
        self.removed_pods: dict[tuple[str, str], dict] = {}  # their last state, for the Job controller
        self.requests: list[dict] = []
        self._expiries: list[str] = []
        self._last_log_ns = 0
        self._tasks: set[asyncio.Task] = set()
        self.stopping = False
        self._sockets = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        self.port = self._sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-kubernetes", daemon=True)

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> FakeKubernetes:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake Kubernetes API did not start")
        return self

    def _serve(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.changed = tornado.locks.Condition()
        routes = [
            (r"/apis/batch/v1/namespaces/([^/]+)/jobs", JobsHandler),
            (r"/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)", JobHandler),
            (r"/api/v1/namespaces/([^/]+)/pods", PodsHandler),
            (r"/api/v1/namespaces/([^/]+)/pods/([^/]+)", PodHandler),
            (r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log", PodLogHandler),
        ]
        app = tornado.web.Application([(path, handler, {"fake": self}) for path, handler in routes],
                                      default_handler_class=MissingHandler, default_handler_args={"fake": self},
                                      log_function=lambda handler: None)
        self.server = tornado.httpserver.HTTPServer(app)
        self.server.add_sockets(self._sockets)
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def stop(self) -> None:
        """Stop serving: wake every stream, end the simulations, close the connections, join the thread."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError("the fake Kubernetes API did not stop")

    async def _shutdown(self) -> None:
        self.stopping = True
        self.changed.notify_all()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.server.stop()
        await asyncio.wait_for(self.server.close_all_connections(), timeout=5)

    def _spawn(self, coroutine) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- for tests (any thread) -------------------------------------------------------------------

    def expire_next_watch(self, how: str = "event") -> None:
        """The next watch request answers 410 Gone: as an ERROR watch event ("event") or an HTTP 410 ("http")."""
        with self.lock:
            self._expiries.append(how)

    def job(self, name: str, namespace: str = "default") -> dict | None:
        with self.lock:
            return copy.deepcopy(self.jobs.get((namespace, name)))

    def pods_of(self, job: str, namespace: str = "default") -> list[dict]:
        with self.lock:
            return [copy.deepcopy(pod) for (ns, _), pod in self.pods.items()
                    if ns == namespace and pod["metadata"]["labels"].get("job-name") == job]

    def created(self) -> list[dict]:
        """Bodies of the Jobs POSTed, accepted or not."""
        with self.lock:
            return [copy.deepcopy(r["body"]) for r in self.requests if r["method"] == "POST"]

    def requests_to(self, method: str, path_pattern: str) -> list[dict]:
        with self.lock:
            return [copy.deepcopy(r) for r in self.requests
                    if r["method"] == method and re.search(path_pattern, r["path"])]

    # -- state changes (on the loop's thread) -------------------------------------------------------

    def _bump(self, obj: dict) -> None:
        self.resource_version += 1
        obj["metadata"]["resourceVersion"] = str(self.resource_version)

    def _job_event(self, kind: str, job: dict) -> None:
        self.history.append((self.resource_version, kind, copy.deepcopy(job)))
        self.changed.notify_all()

    def _update_job(self, key: tuple[str, str], change: Callable[[dict], None]) -> dict | None:
        with self.lock:
            job = self.jobs.get(key)
            if job is None:
                return None
            change(job)
            self._bump(job)
            self._job_event("MODIFIED", job)
            return job

    def _update_pod(self, key: tuple[str, str], change: Callable[[dict], None]) -> dict | None:
        with self.lock:
            pod = self.pods.get(key)
            if pod is None:
                return None
            change(pod)
            self._bump(pod)
            self.changed.notify_all()
            return pod

    def create_job(self, namespace: str, body: dict) -> tuple[int, dict]:
        causes = validate_job(body)
        name = (body.get("metadata") or {}).get("name", "")
        if causes:
            message = f'Job.batch "{name}" is invalid: [' + ", ".join(
                f"{c['field']}: {c['message']}" for c in causes) + "]"
            return 422, status_object(422, "Invalid", message,
                                      {"name": name, "group": "batch", "kind": "Job", "causes": causes})
        with self.lock:
            key = (namespace, name)
            if key in self.jobs:
                return 409, status_object(409, "AlreadyExists", f'jobs.batch "{name}" already exists',
                                          {"name": name, "group": "batch", "kind": "jobs"})
            job = copy.deepcopy(body)
            uid = str(uuid.uuid4())
            meta = job["metadata"]
            meta.update(namespace=namespace, uid=uid, generation=1, creationTimestamp=rfc3339())
            spec = job["spec"]
            if not meta.get("labels"):
                meta["labels"] = dict(spec["template"].get("metadata", {}).get("labels") or {})
            spec.setdefault("parallelism", 1)
            spec.setdefault("completions", 1)
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("suspend", False)
            spec.setdefault("completionMode", "NonIndexed")
            spec.setdefault("manualSelector", False)
            spec.setdefault("podReplacementPolicy", "Failed" if "podFailurePolicy" in spec else "TerminatingOrFailed")
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            template_meta = spec["template"].setdefault("metadata", {})
            template_meta.setdefault("labels", {}).update({
                "batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                "controller-uid": uid, "job-name": name,
            })
            pod_spec = spec["template"]["spec"]
            pod_spec.setdefault("dnsPolicy", "ClusterFirst")
            pod_spec.setdefault("schedulerName", "default-scheduler")
            pod_spec.setdefault("securityContext", {})
            pod_spec.setdefault("terminationGracePeriodSeconds", 30)
            for container in pod_spec["containers"]:
                container.setdefault("terminationMessagePath", "/dev/termination-log")
                container.setdefault("terminationMessagePolicy", "File")
                container.setdefault("imagePullPolicy",
                                     "Always" if container["image"].endswith(":latest") else "IfNotPresent")
            job["status"] = {}
            if spec["suspend"]:
                job["status"]["conditions"] = [self._condition("Suspended", "JobSuspended", "Job suspended")]
            self._bump(job)
            self.jobs[key] = job
            self._job_event("ADDED", job)
            if not spec["suspend"]:
                self._resume(key)
            return 201, copy.deepcopy(job)

    @staticmethod
    def _condition(kind: str, reason: str, message: str, status: str = "True") -> dict:
        now = rfc3339()
        return {"type": kind, "status": status, "lastProbeTime": now, "lastTransitionTime": now,
                "reason": reason, "message": message}

    def patch_job(self, key: tuple[str, str], patch: dict) -> tuple[int, dict]:
        with self.lock:
            job = self.jobs.get(key)
            if job is None:
                return 404, self._not_found("jobs.batch", key[1])
            changed = merge_patch(copy.deepcopy(job), patch)
            if changed["spec"].get("template") != job["spec"].get("template"):
                return 422, status_object(422, "Invalid", f'Job.batch "{key[1]}" is invalid: spec.template: '
                                                          "Invalid value: field is immutable")
            was_suspended = job["spec"].get("suspend")
            job.clear()
            job.update(changed)
            self._bump(job)
            self._job_event("MODIFIED", job)
            if was_suspended and not job["spec"].get("suspend"):
                self._resume(key)
            elif not was_suspended and job["spec"].get("suspend"):
                self._suspend(key)
            return 200, copy.deepcopy(job)

    def _resume(self, key: tuple[str, str]) -> None:
        def change(job: dict) -> None:
            status = job["status"]
            status["startTime"] = rfc3339()
            for condition in status.get("conditions") or []:
                if condition["type"] == "Suspended":
                    condition.update(status="False", reason="JobResumed", message="Job resumed",
                                     lastTransitionTime=rfc3339())

        self._update_job(key, change)
        self._spawn(self._run_job(key))

    def _suspend(self, key: tuple[str, str]) -> None:
        for pod_key in self._pods_of_job(key):
            self.delete_pod(pod_key, 30)
        self._update_job(key, lambda job: job["status"].setdefault("conditions", []).append(
            self._condition("Suspended", "JobSuspended", "Job suspended")))

    def delete_job(self, key: tuple[str, str], propagation: str | None) -> tuple[int, dict]:
        with self.lock:
            job = self.jobs.pop(key, None)
            if job is None:
                return 404, self._not_found("jobs.batch", key[1])
            self._bump(job)
            self._job_event("DELETED", job)
            if propagation != "Orphan":  # Background here; Foreground would wait for the pods first
                for pod_key in self._pods_of_job(key, job["metadata"]["uid"]):
                    grace = self.pods[pod_key]["spec"].get("terminationGracePeriodSeconds", 30)
                    self.delete_pod(pod_key, grace)
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": {"name": key[1], "group": "batch", "kind": "jobs", "uid": job["metadata"]["uid"]}}

    def _pods_of_job(self, key: tuple[str, str], uid: str | None = None) -> list[tuple[str, str]]:
        return [pod_key for pod_key, pod in self.pods.items()
                if pod_key[0] == key[0] and pod["metadata"]["labels"].get("job-name") == key[1]
                and (uid is None or pod["metadata"]["ownerReferences"][0]["uid"] == uid)]

    def delete_pod(self, key: tuple[str, str], grace: int | None) -> tuple[int, dict]:
        """A running container gets SIGKILL (137) at grace 0, else SIGTERM, on which the fake actor exits (143)."""
        with self.lock:
            pod = self.pods.get(key)
            if pod is None:
                return 404, self._not_found("pods", key[1])
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30) if grace is None else grace
            state = pod["status"]["containerStatuses"][0]["state"]
            if "running" in state:
                self._terminate(pod, 137 if grace == 0 else 143, "Error")
            elif pod["status"]["phase"] == "Pending":
                pod["status"]["phase"] = "Failed"  # never started: no exit code
            pod["metadata"]["deletionTimestamp"] = rfc3339(time.time() + grace)
            pod["metadata"]["deletionGracePeriodSeconds"] = grace
            self._bump(pod)
            answer = copy.deepcopy(pod)
            if grace == 0:
                self._remove_pod(key)
            else:
                self.loop.call_later(self.step, self._remove_pod, key)
            self.changed.notify_all()
            return 200, answer

    def _remove_pod(self, key: tuple[str, str]) -> None:
        with self.lock:
            pod = self.pods.pop(key, None)
            if pod is not None:
                self.removed_pods[key] = pod
            self.logs.pop(key, None)
            self.changed.notify_all()

    @staticmethod
    def _not_found(resource: str, name: str) -> dict:
        """``resource`` as the API names it in messages: "jobs.batch", "pods"."""
        kind, _, group = resource.partition(".")
        details = {"name": name, "kind": kind} if not group else {"name": name, "group": group, "kind": kind}
        return status_object(404, "NotFound", f'{resource} "{name}" not found', details)

    # -- the simulated Job controller and kubelet -------------------------------------------------------

    def _create_pod(self, job_key: tuple[str, str]) -> tuple[str, str]:
        with self.lock:
            job = self.jobs[job_key]
            template = job["spec"]["template"]
            name = f"{job_key[1]}-{''.join(secrets.choice(_POD_SUFFIX) for _ in range(5))}"
            container = template["spec"]["containers"][0]
            resources = container.get("resources") or {}
            guaranteed = all((resources.get("limits") or {}).get(r) == (resources.get("requests") or {}).get(r)
                             and (resources.get("limits") or {}).get(r) for r in ("cpu", "memory"))
            now = rfc3339()
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name, "generateName": f"{job_key[1]}-", "namespace": job_key[0],
                    "uid": str(uuid.uuid4()), "creationTimestamp": now,
                    "labels": copy.deepcopy(template["metadata"]["labels"]),
                    "annotations": copy.deepcopy(template["metadata"].get("annotations") or {}),
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_key[1],
                                         "uid": job["metadata"]["uid"], "controller": True,
                                         "blockOwnerDeletion": True}],
                    "finalizers": ["batch.kubernetes.io/job-tracking"],
                },
                "spec": {**copy.deepcopy(template["spec"]), "nodeName": "fake-node-1"},
                "status": {
                    "phase": "Pending",
                    "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                                    "lastTransitionTime": now}],
                    "hostIP": "172.18.0.2", "hostIPs": [{"ip": "172.18.0.2"}], "startTime": now,
                    "qosClass": "Guaranteed" if guaranteed else "Burstable",
                    "containerStatuses": [{
                        "name": container["name"], "image": container["image"], "imageID": "",
                        "ready": False, "restartCount": 0, "started": False,
                        "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {},
                    }],
                },
            }
            self._bump(pod)
            key = (job_key[0], name)
            self.pods[key] = pod
            self.logs[key] = []
            self._update_job(job_key, lambda j: j["status"].update(active=1, ready=0))
            return key

    def _log(self, key: tuple[str, str], text: str, ts_ns: int | None = None) -> None:
        with self.lock:
            if key not in self.logs:
                return
            ts_ns = max(ts_ns or time.time_ns(), self._last_log_ns + 1)
            self._last_log_ns = ts_ns
            self.logs[key].append((ts_ns, text))
            self.changed.notify_all()

    def _set_running(self, key: tuple[str, str]) -> None:
        def change(pod: dict) -> None:
            now = rfc3339()
            status = pod["status"]
            status["phase"] = "Running"
            status["podIP"] = "10.244.0.17"
            status["podIPs"] = [{"ip": "10.244.0.17"}]
            for kind in ("Initialized", "Ready", "ContainersReady"):
                status["conditions"].append({"type": kind, "status": "True", "lastProbeTime": None,
                                             "lastTransitionTime": now})
            container = status["containerStatuses"][0]
            container.update(ready=True, started=True, containerID=f"containerd://{secrets.token_hex(32)}",
                             imageID=f"docker.io/library/fake@sha256:{secrets.token_hex(32)}",
                             state={"running": {"startedAt": now}})

        self._update_pod(key, change)

    def _terminate(self, pod: dict, exit_code: int, reason: str) -> None:
        """The container of ``pod`` (held under the lock) exits."""
        status = pod["status"]
        container = status["containerStatuses"][0]
        started = (container["state"].get("running") or {}).get("startedAt")
        container.update(ready=False, started=False, state={"terminated": {
            "exitCode": exit_code, "reason": reason, "startedAt": started, "finishedAt": rfc3339(),
            "containerID": container.get("containerID", ""),
        }})
        status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
        for condition in status["conditions"]:
            if condition["type"] in ("Ready", "ContainersReady"):
                condition.update(status="False", reason="PodCompleted" if exit_code == 0 else "PodFailed")

    def _exit(self, key: tuple[str, str], exit_code: int, reason: str | None = None) -> str:
        done = self._update_pod(key, lambda pod: self._terminate(
            pod, exit_code, reason or ("Completed" if exit_code == 0 else "Error")))
        if done is None:
            return "gone"
        return "succeeded" if exit_code == 0 else "failed"

    def _alive(self, key: tuple[str, str]) -> bool:
        with self.lock:
            pod = self.pods.get(key)
            return (bool(pod) and "deletionTimestamp" not in pod["metadata"]
                    and pod["status"]["phase"] in ("Pending", "Running"))

    async def _steps(self, key: tuple[str, str], count: int = 1) -> bool:
        """Sleep ``count`` steps; False when the pod was deleted meanwhile."""
        for _ in range(count):
            await asyncio.sleep(self.step)
            if not self._alive(key):
                return False
        return True

    async def _until(self, condition: Callable[[], bool]) -> None:
        while not condition() and not self.stopping:
            await self.changed.wait(timeout=dt.timedelta(seconds=0.5))

    async def _run_pod(self, job_key: tuple[str, str], key: tuple[str, str], attempt: int) -> str:
        """The kubelet and the container's program: returns succeeded, failed, deadline or gone."""
        with self.lock:
            pod = self.pods[key]
            env = {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env") or []}
            deadline = self.jobs[job_key]["spec"].get("activeDeadlineSeconds")
        kind, _, argument = env.get("FAKE_SCENARIO", "echo:1").partition(":")
        if not await self._steps(key):
            return "gone"
        if kind == "pending":
            self._update_pod(key, lambda p: p["status"]["containerStatuses"][0].update(state={"waiting": {
                "reason": "ImagePullBackOff",
                "message": f'Back-off pulling image "{p["spec"]["containers"][0]["image"]}"'}}))
            await self._until(lambda: not self._alive(key))
            return "gone"
        self._set_running(key)
        if kind == "echo":
            for number in range(1, int(argument or 1) + 1):
                self._log(key, f"line {number}")
                if not await self._steps(key):
                    return "gone"
            return self._exit(key, 0)
        if kind == "burst":
            base = time.time_ns() // 1_000_000 * 1_000_000 + 1_000_000  # the start of the next millisecond
            for number in range(1, int(argument or 1) + 1):
                self._log(key, f"burst {number}", base + number)
            if not await self._steps(key):
                return "gone"
            return self._exit(key, 0)
        if kind == "exit":
            self._log(key, f"failing with exit code {argument}")
            return self._exit(key, int(argument)) if await self._steps(key) else "gone"
        if kind == "oom":
            self._log(key, "allocating memory")
            return self._exit(key, 137, "OOMKilled") if await self._steps(key) else "gone"
        if kind == "disrupt":
            if attempt == 0:
                self._log(key, "pod 1: started")
                if not await self._steps(key):
                    return "gone"
                self._log(key, "pod 1: working")
                if not await self._steps(key):
                    return "gone"

                def evict(pod: dict) -> None:  # the Eviction API during a node drain
                    pod["status"]["conditions"].append(self._condition(
                        "DisruptionTarget", "EvictionByEvictionAPI", "Eviction API: evicting"))
                    self._terminate(pod, 143, "Error")

                self._update_pod(key, evict)
                return "failed"
            self._log(key, f"pod {attempt + 1}: resumed")
            if not await self._steps(key):
                return "gone"
            self._log(key, f"pod {attempt + 1}: done")
            return self._exit(key, 0) if await self._steps(key) else "gone"
        if kind == "deadline" and deadline:
            self._log(key, "working")
            return "deadline" if await self._steps(key, 3) else "gone"
        # sleep (and deadline without activeDeadlineSeconds): run until deleted
        self._log(key, "sleeping")
        await self._until(lambda: not self._alive(key))
        return "gone"

    def _failure_action(self, job: dict, pod: dict) -> tuple[str | None, int | None]:
        """The first podFailurePolicy rule that matches the failed pod: (action, index)."""
        rules = (job["spec"].get("podFailurePolicy") or {}).get("rules") or []
        conditions = {c["type"]: c for c in pod["status"].get("conditions") or []}
        for index, rule in enumerate(rules):
            for pattern in rule.get("onPodConditions") or []:
                found = conditions.get(pattern["type"])
                if found and found["status"] == pattern.get("status", "True"):
                    return rule["action"], index
            codes = rule.get("onExitCodes")
            if codes:
                for container in pod["status"]["containerStatuses"]:
                    if codes.get("containerName") not in (None, container["name"]):
                        continue
                    code = (container["state"].get("terminated") or {}).get("exitCode")
                    if code in (None, 0):  # containers that exited 0 never match
                        continue
                    if (code in codes["values"]) == (codes["operator"] == "In"):
                        return rule["action"], index
        return None, None

    def _finish_job(self, key: tuple[str, str], kind: str, reason: str, message: str) -> None:
        def change(job: dict) -> None:
            status = job["status"]
            conditions = status.setdefault("conditions", [])
            if kind == "Failed":
                conditions.append(self._condition("FailureTarget", reason, message))
                status["failed"] = status.get("failed", 0) + 1
            else:
                status["succeeded"] = 1
                status["completionTime"] = rfc3339()
            conditions.append(self._condition(kind, reason, message))
            status.update(active=0, ready=0)

        self._update_job(key, change)

    async def _run_job(self, key: tuple[str, str]) -> None:
        attempt = 0
        try:
            while True:
                with self.lock:
                    job = self.jobs.get(key)
                    if job is None or job["spec"].get("suspend"):
                        return
                pod_key = self._create_pod(key)
                outcome = await self._run_pod(key, pod_key, attempt)
                await asyncio.sleep(self.step)  # the controller notices
                with self.lock:
                    job = self.jobs.get(key)
                    pod = self.pods.get(pod_key) or self.removed_pods.get(pod_key)
                if job is None or job["spec"].get("suspend"):
                    return
                if outcome == "gone":  # its pod was deleted while the Job goes on: a failed pod
                    outcome = "failed"
                if outcome == "deadline":
                    self._update_job(key, lambda j: j["status"].setdefault("conditions", []).append(
                        self._condition("FailureTarget", "DeadlineExceeded",
                                        "Job was active longer than specified deadline")))
                    for active in self._pods_of_job(key):
                        self.delete_pod(active, None)
                    self._update_job(key, lambda j: (j["status"]["conditions"].append(self._condition(
                        "Failed", "DeadlineExceeded", "Job was active longer than specified deadline")),
                        j["status"].update(active=0, ready=0, failed=1)))
                    return
                if outcome == "succeeded":
                    self._finish_job(key, "Complete", "CompletionsReached", "Reached expected number of succeeded pods")
                    return
                action, index = self._failure_action(job, pod) if pod else (None, None)
                if action == "Ignore":
                    attempt += 1
                    continue
                if action == "FailJob":
                    container = pod["status"]["containerStatuses"][0]
                    code = container["state"]["terminated"]["exitCode"]
                    self._finish_job(key, "Failed", "PodFailurePolicy",
                                     f"Container {container['name']} for pod {key[0]}/{pod_key[1]} failed with exit "
                                     f"code {code} matching FailJob rule at index {index}")
                    return
                failed = job["status"].get("failed", 0) + 1
                if failed > job["spec"]["backoffLimit"]:
                    self._finish_job(key, "Failed", "BackoffLimitExceeded",
                                     "Job has reached the specified backoff limit")
                    return
                self._update_job(key, lambda j, failed=failed: j["status"].update(failed=failed))
                attempt += 1
        except asyncio.CancelledError:
            return


# -- HTTP handlers -------------------------------------------------------------------------------------


class Handler(tornado.web.RequestHandler):
    def initialize(self, fake: FakeKubernetes) -> None:
        self.fake = fake
        self.gone = False

    def prepare(self) -> None:
        self.body = None
        if self.request.body:
            try:
                self.body = json.loads(self.request.body)
            except ValueError:
                self.send_status(400, "BadRequest", "the request body is not JSON")
                return
        query = {key: self.get_query_argument(key) for key in self.request.query_arguments}
        with self.fake.lock:
            self.fake.requests.append({"method": self.request.method, "path": self.request.path, "query": query,
                                       "body": self.body,
                                       "content_type": self.request.headers.get("Content-Type"),
                                       "authorization": self.request.headers.get("Authorization")})

    def arg(self, name: str, default: str | None = None) -> str | None:
        return self.get_query_argument(name, default)

    def flag(self, name: str) -> bool:
        return (self.arg(name) or "").lower() in ("true", "1")

    def send_json(self, obj: dict, code: int = 200) -> None:
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(obj))

    def send_status(self, code: int, reason: str, message: str) -> None:
        self.send_json(status_object(code, reason, message), code)

    def on_connection_close(self) -> None:
        self.gone = True
        self.fake.changed.notify_all()

    def write_error(self, status_code: int, **kwargs) -> None:
        self.finish(json.dumps(status_object(status_code, "InternalError", self._reason)))

    def list_answer(self, kind: str, api_version: str, items: list[dict]) -> None:
        limit = int(self.arg("limit") or 0)
        offset = int(base64.b64decode(self.arg("continue")).decode()) if self.arg("continue") else 0
        page = items[offset:offset + limit] if limit else items[offset:]
        meta: dict = {"resourceVersion": str(self.fake.resource_version)}
        if limit and offset + limit < len(items):
            meta["continue"] = base64.b64encode(str(offset + limit).encode()).decode()
            meta["remainingItemCount"] = len(items) - offset - limit
        for item in page:  # items of a list carry no kind/apiVersion of their own
            item.pop("kind", None)
            item.pop("apiVersion", None)
        self.send_json({"kind": kind, "apiVersion": api_version, "metadata": meta, "items": page})


class MissingHandler(Handler):
    def prepare(self) -> None:
        super().prepare()
        if not self._finished:
            self.send_status(404, "NotFound", "the server could not find the requested resource")


class JobsHandler(Handler):
    async def get(self, namespace: str) -> None:
        if self.flag("watch"):
            await self.watch(namespace)
            return
        with self.fake.lock:
            jobs = [copy.deepcopy(job) for (ns, _), job in sorted(self.fake.jobs.items()) if ns == namespace]
        try:
            jobs = [job for job in jobs
                    if label_match(job["metadata"].get("labels") or {}, self.arg("labelSelector", ""))
                    and field_match(job, self.arg("fieldSelector", ""))]
        except KeyError as exc:
            self.send_status(400, "BadRequest", f'"{exc.args[0]}" is not a known field selector: only '
                                                '"metadata.name", "metadata.namespace"')
            return
        self.list_answer("JobList", "batch/v1", jobs)

    def post(self, namespace: str) -> None:
        code, answer = self.fake.create_job(namespace, self.body or {})
        self.send_json(answer, code)

    async def watch(self, namespace: str) -> None:
        fake = self.fake
        version = self.arg("resourceVersion")
        labels, fields = self.arg("labelSelector", ""), self.arg("fieldSelector", "")
        timeout = float(self.arg("timeoutSeconds") or 1800)
        with fake.lock:
            expiry = fake._expiries.pop(0) if fake._expiries else None
            current = fake.resource_version
        gone = f"too old resource version: {version} ({current})"
        if expiry == "http":
            self.send_status(410, "Expired", gone)
            return
        self.set_header("Content-Type", "application/json")
        self.set_status(200)

        def matches(job: dict) -> bool:
            return (job["metadata"]["namespace"] == namespace
                    and label_match(job["metadata"].get("labels") or {}, labels)
                    and field_match(job, fields))

        if expiry == "event":
            self.write(json.dumps({"type": "ERROR", "object": status_object(410, "Expired", gone)}) + "\n")
            self.finish()
            return
        if version in (None, "", "0"):  # "start at most recent", after the current state as ADDED events
            with fake.lock:
                for job in fake.jobs.values():
                    if matches(job):
                        self.write(json.dumps({"type": "ADDED", "object": job}) + "\n")
            since = current
        else:
            since = int(version)
        deadline = time.monotonic() + timeout
        try:
            await self.flush()
            while True:
                with fake.lock:
                    events = [(rv, kind, job) for rv, kind, job in fake.history if rv > since and matches(job)]
                for rv, kind, job in events:
                    self.write(json.dumps({"type": kind, "object": job}) + "\n")
                    since = rv
                if events:
                    await self.flush()
                remaining = deadline - time.monotonic()
                if fake.stopping or self.gone or remaining <= 0:
                    break
                await fake.changed.wait(timeout=dt.timedelta(seconds=min(remaining, 0.5)))
        except tornado.iostream.StreamClosedError:
            return
        self.finish()


class JobHandler(Handler):
    def get(self, namespace: str, name: str) -> None:
        job = self.fake.job(name, namespace)
        if job is None:
            self.send_json(self.fake._not_found("jobs.batch", name), 404)
        else:
            self.send_json(job)

    def patch(self, namespace: str, name: str) -> None:
        content_type = (self.request.headers.get("Content-Type") or "").split(";")[0]
        if content_type not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            self.send_status(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                                                          f"accepted media types (by this fake) are merge patches, "
                                                          f"not {content_type}")
            return
        code, answer = self.fake.patch_job((namespace, name), self.body or {})
        self.send_json(answer, code)

    def delete(self, namespace: str, name: str) -> None:
        options = self.body or {}
        propagation = self.arg("propagationPolicy") or options.get("propagationPolicy")
        code, answer = self.fake.delete_job((namespace, name), propagation)
        self.send_json(answer, code)


class PodsHandler(Handler):
    def get(self, namespace: str) -> None:
        with self.fake.lock:
            pods = [copy.deepcopy(pod) for (ns, _), pod in sorted(self.fake.pods.items()) if ns == namespace]
        selector = self.arg("labelSelector", "")
        self.list_answer("PodList", "v1", [p for p in pods if label_match(p["metadata"].get("labels") or {}, selector)])


class PodHandler(Handler):
    def get(self, namespace: str, name: str) -> None:
        with self.fake.lock:
            pod = copy.deepcopy(self.fake.pods.get((namespace, name)))
        if pod is None:
            self.send_json(self.fake._not_found("pods", name), 404)
        else:
            self.send_json(pod)

    def delete(self, namespace: str, name: str) -> None:
        options = self.body or {}
        grace = self.arg("gracePeriodSeconds") or options.get("gracePeriodSeconds")
        code, answer = self.fake.delete_pod((namespace, name), None if grace is None else int(grace))
        self.send_json(answer, code)


class PodLogHandler(Handler):
    async def get(self, namespace: str, name: str) -> None:
        fake = self.fake
        key = (namespace, name)
        with fake.lock:
            pod = copy.deepcopy(fake.pods.get(key))
        if pod is None:
            self.send_json(fake._not_found("pods", name), 404)
            return
        containers = [c["name"] for c in pod["spec"]["containers"]]
        container = self.arg("container") or (containers[0] if len(containers) == 1 else None)
        if container not in containers:
            self.send_status(400, "BadRequest", f"container {container} is not valid for pod {name}")
            return
        state = pod["status"]["containerStatuses"][0]["state"]
        if "waiting" in state:
            reason = state["waiting"].get("reason", "")
            self.send_status(400, "BadRequest",
                             f'container "{container}" in pod "{name}" is waiting to start: {reason}')
            return
        follow, stamps = self.flag("follow"), self.flag("timestamps")
        since = self.arg("sinceSeconds")
        cutoff = time.time_ns() - int(since) * 1_000_000_000 if since else 0
        self.set_header("Content-Type", "text/plain")
        sent = 0
        try:
            while True:
                with fake.lock:
                    lines = list(fake.logs.get(key, []))[sent:]
                    pod_now = fake.pods.get(key)
                    running = bool(pod_now) and "running" in pod_now["status"]["containerStatuses"][0]["state"]
                for ts_ns, text in lines:
                    if ts_ns >= cutoff:
                        self.write((f"{log_stamp(ts_ns)} {text}\n" if stamps else f"{text}\n").encode())
                sent += len(lines)
                if not follow or not running or fake.stopping or self.gone:
                    break
                await self.flush()
                await fake.changed.wait(timeout=dt.timedelta(seconds=0.5))
        except tornado.iostream.StreamClosedError:
            return
        self.finish()
