"""What a run is after metamorphs: the actor its container runs now, and the record of each metamorph.

A metamorph keeps the run (id, storages, ``actId``) and changes the actor and build its container runs;
Apify's run object lists them in ``metamorphs``, the last one naming the current actor.
"""

from __future__ import annotations

import json
from typing import Any

from ..models import Run

#: How often one run may be metamorphed (Apify's runtime limit).
MAX_METAMORPHS = 10


def metamorphs(run: Run) -> list[dict[str, Any]]:
    """The run's metamorphs, oldest first: {createdAt, actorId, buildId, inputKey}."""
    return list(json.loads(run.get("metamorphs") or "[]"))


def current_actor_id(run: Run) -> str:
    """The actor whose code the run's container runs: the last metamorph's target, else the run's own actor."""
    done = metamorphs(run)
    return str(done[-1]["actorId"]) if done else run["actor_id"]


def metamorph_input_key(run: Run) -> str:
    """Where the input of the run's next metamorph is stored (``INPUT-METAMORPH-1``, then -2...)."""
    return f"INPUT-METAMORPH-{len(metamorphs(run)) + 1}"
