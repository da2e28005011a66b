"""Apify API v2 over HTTP (tornado handlers), with no Jupyter in it.

The same handler logic serves two audiences: the user (mounted in the Jupyter server, behind
Jupyter's auth) and actors (a separate listener on the Docker network, behind per-run tokens).
"""
