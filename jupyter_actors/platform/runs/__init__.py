"""Runs, from start to end: ``service`` starts, resurrects and aborts them, ``container`` says what their
container is made of, ``watcher`` follows one container to its end, ``reconcile`` adopts the runs a
previous server left behind. Expiry is in ``..retention``; disk and heartbeat checks in ``..housekeeping``.
"""
