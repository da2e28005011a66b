"""Run statuses as the API reports them (the notebook side knows nothing of the platform's enum)."""

from __future__ import annotations

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED"})
