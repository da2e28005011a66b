"""jupyter-actors: Apify-style actors run as resource-limited Docker containers from Jupyter."""

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict]:
    from .server.app import ActorsExtension

    return [{"module": "jupyter_actors.server.app", "app": ActorsExtension}]
