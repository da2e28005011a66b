"""The Jupyter server extension: a thin HTTP layer over the platform, behind Jupyter's auth."""
