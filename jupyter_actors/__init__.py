"""jupyter-actors: Apify-style actors run as resource-limited Docker containers from Jupyter."""

__version__ = "0.1.0"
