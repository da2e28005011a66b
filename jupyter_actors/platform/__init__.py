"""The platform: actors, builds, runs, limits, storages and engine backends.

Nothing in this package knows about Jupyter; the server extension and the CLI sit on top of it.
"""
