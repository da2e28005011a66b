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
* ``activeDeadlineSeconds`` is the run's timeout (``ContainerSpec.timeout_at``) plus a margin:
  a backstop for when the server is down; the platform's own timer normally stops the run first.
  Kubernetes counts it from the moment the Job is resumed.
* ``stop`` deletes the Job (propagation Background, so nothing re-creates its pod) and then deletes
  its pods with the requested grace period: the grace period of a Job's deletion is not passed on to
  its pods by the garbage collector, which would use the pod's own 30 s default.
* A pod that cannot start (an invalid image name, an image that cannot be pulled for
  ``image_pull_grace_secs``, a container config error) would wait for its deadline: a following log
  reader stops, ``inspect`` reports the Job not running with the cluster's reason as
  ``ContainerState.error``, and ``wait`` returns, so the run's watcher fails the run and removes the
  Job. Reading a log or a state never changes the cluster. A Job that failed because of a disruption
  it did not absorb (a cluster without ``podFailurePolicy``) is reported ``lost``.
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
  The backend declares ``has_network = False``: ``network_gateway`` answers None.
* Images: nodes pull them. ``build_image``/``push_image`` delegate to a local Docker backend
  (``images``); without one, every image is taken to exist (pre-distributed or pulled by nodes).
* The server needs, in its namespace: jobs (create, get, list, watch, patch, delete), pods (get,
  list, delete) and pods/log (get).
"""

from .backend import KubernetesBackend
from .jobs import (
    ANNOTATION_NAME,
    CONTAINER,
    SAMPLE_NETWORK_POLICY,
    job_finished,
    job_name,
    job_state,
    merged_labels,
    split_labels,
    timestamp_ns,
)

__all__ = [
    "ANNOTATION_NAME", "CONTAINER", "SAMPLE_NETWORK_POLICY", "KubernetesBackend",
    "job_finished", "job_name", "job_state", "merged_labels", "split_labels", "timestamp_ns",
]
