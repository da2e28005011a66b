"""Actor tasks from a notebook: save an actor with its input and run options under a name, run it later.

``task("daily-crawl", actor="crawler", input={...}, memory=1024)`` creates the task or updates the
one of that name (only what is passed changes); ``.call()``/``.start()`` run it. All over HTTP.
"""

from __future__ import annotations

from typing import Any

from .actors import _ref
from .client import Client, resolve
from .errors import ActorsError, NotFoundError
from .runs import Run


class Task:
    """A task saved on the server; ``data`` is its Apify task object as last read."""

    def __init__(self, data: dict, *, client: Client) -> None:
        self.data = data
        self.client = client

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def input(self) -> dict:
        return self.data["input"]

    @property
    def options(self) -> dict:
        return self.data["options"]

    def __repr__(self) -> str:
        return f"Task({self.name!r}, actor={self.data.get('actName')!r}, id={self.id!r})"

    def start(self, input: dict | None = None, *, memory: int | None = None, timeout: int | None = None,
              build: str | None = None) -> Run:
        """Start a run and return at once: ``input``'s fields override the task's, the options the task's."""
        if input is not None and not isinstance(input, dict):
            raise ActorsError("A task run's input is a dict: its fields override the task's input.")
        params = {k: v for k, v in {"memory": memory, "timeout": timeout, "build": build}.items() if v is not None}
        data = self.client.data("POST", f"/actor-tasks/{self.id}/runs", params=params, json=input)
        return Run(data["id"], client=self.client, data=data)

    def call(self, input: dict | None = None, *, memory: int | None = None, timeout: int | None = None,
             build: str | None = None) -> Run:
        """Start a run and wait for it to end; returns the finished Run."""
        return self.start(input, memory=memory, timeout=timeout, build=build).wait()

    def delete(self) -> None:
        """Delete the task (its runs stay)."""
        self.client.request("DELETE", f"/actor-tasks/{self.id}")


def task(name: str, actor: str | None = None, input: dict | None = None, *, memory: int | None = None,
         timeout: int | None = None, build: str | None = None, client: Client | None = None) -> Task:
    """Save a task and return it: create it (``actor`` needed) or update the task of that name with what
    is passed (memory in MB, timeout in seconds; None leaves a setting as it is)."""
    client = resolve(client)
    if input is not None and not isinstance(input, dict):
        raise ActorsError("A task's input is a dict (Apify's task input is a JSON object).")
    options = {k: v for k, v in {"memoryMbytes": memory, "timeoutSecs": timeout, "build": build}.items()
               if v is not None}
    try:
        existing = client.get(f"/actor-tasks/{_ref(name)}")
    except NotFoundError:
        existing = None
    if existing is None:
        if actor is None:
            raise ActorsError(f"There is no task {name!r} yet: pass actor= to create it.")
        body: dict[str, Any] = {"actId": actor, "name": name, "options": options, "input": input or {}}
        return Task(client.post("/actor-tasks", json=body), client=client)
    if actor is not None and client.get(f"/actors/{_ref(actor)}")["id"] != existing["actId"]:
        raise ActorsError(f"Task {name!r} runs actor {existing.get('actName')!r}, not {actor!r}; "
                          "delete it or pick another name to save a task of another actor.")
    body = {"options": options} if options else {}
    if input is not None:
        body["input"] = input
    if not body:
        return Task(existing, client=client)
    return Task(client.data("PUT", f"/actor-tasks/{existing['id']}", json=body), client=client)
