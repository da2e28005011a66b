"""The run-settings form: build, timeout, memory and input of an actor, then Run / Abort / Resurrect.

With an input schema (Apify's ``input_schema.json`` format) the input is a generated form validated
with ``jsonschema`` before starting; without one it is a JSON editor that checks the JSON.
"""

from __future__ import annotations

import html
import json
from typing import Any

from .actors import build_choices, get_actor, input_schema, start
from .client import Client, resolve
from .errors import ActorsError, InputValidationError
from .live import LiveView
from .runs import Run
from .sizing import ALLOWED_MEMORY_MB

MAX_TIMEOUT_SECS = 7 * 24 * 3600
STYLE = {"description_width": "initial"}


def _widgets():  # ipywidgets is imported lazily (import jupyter_actors stays light)
    import ipywidgets

    return ipywidgets


# -- input fields ----------------------------------------------------------------------------------


class Field:
    """One input property: a widget, and how to read it back (None = leave the property out)."""

    def __init__(self, name: str, spec: dict, required: bool) -> None:
        self.name, self.spec, self.required = name, spec, required
        self.has_initial = "prefill" in spec or "default" in spec
        self.initial = spec.get("prefill", spec.get("default"))
        self.widget = self.make_widget()
        self.touched = False
        self.widget.observe(self._touch, names="value")

    def _touch(self, _: Any) -> None:
        self.touched = True

    @property
    def is_json(self) -> bool:
        """Arrays, objects and the json editor are edited as JSON text."""
        return self.spec.get("type") in ("array", "object") or self.spec.get("editor") == "json"

    @property
    def label(self) -> str:
        title = self.spec.get("title") or self.name
        return f"{title} *" if self.required else title

    def make_widget(self) -> Any:
        w = _widgets()
        spec, kind = self.spec, self.spec.get("type")
        common = {"description": self.label, "style": STYLE, "description_allow_html": False,
                  "tooltip": spec.get("description") or None}
        if "enum" in spec:
            titles = spec.get("enumTitles") or [str(v) for v in spec["enum"]]
            options = list(zip(titles, spec["enum"], strict=False))
            if not self.required:
                options.insert(0, ("", None))
            return w.Dropdown(options=options, value=self.initial if self.initial in spec["enum"] else options[0][1],
                              **common)
        if kind == "boolean":
            return w.Checkbox(value=bool(self.initial), indent=False, **common)
        if kind in ("integer", "number"):
            number = self.initial if isinstance(self.initial, (int, float)) else spec.get("minimum", 0)
            if kind == "integer":
                bounded = "minimum" in spec and "maximum" in spec
                if bounded:
                    return w.BoundedIntText(value=int(number), min=spec["minimum"], max=spec["maximum"], **common)
                return w.IntText(value=int(number), **common)
            return w.FloatText(value=float(number), **common)
        if self.is_json:
            text = json.dumps(self.initial, indent=2) if self.has_initial else ""
            return w.Textarea(value=text, placeholder="JSON", layout={"width": "95%"}, **common)
        initial = "" if self.initial is None else str(self.initial)
        if spec.get("isSecret"):
            return w.Password(value=initial, **common)
        if spec.get("editor") in ("textarea", "javascript", "python"):
            return w.Textarea(value=initial, layout={"width": "95%"}, **common)
        return w.Text(value=initial, **common)

    def value(self) -> tuple[bool, Any]:
        """(include?, value); raises InputValidationError for text that is not JSON."""
        value = self.widget.value
        include = self.required or self.has_initial or self.touched
        if self.is_json:
            if not value.strip():
                return False, None
            try:
                return True, json.loads(value)
            except ValueError as exc:
                raise InputValidationError(f"{self.label.rstrip(' *')}: not valid JSON ({exc}).") from None
        if value is None or (isinstance(value, str) and value == "" and self.spec.get("type") == "string"):
            return False, None
        return include, value


def apify_to_json_schema(schema: dict) -> dict:
    """Apify's input schema is JSON Schema plus UI keys; keep the validation keywords only."""
    keywords = ("type", "enum", "minimum", "maximum", "pattern", "minLength", "maxLength", "minItems",
                "maxItems", "uniqueItems", "items", "properties", "required")
    properties = {}
    for name, spec in (schema.get("properties") or {}).items():
        prop = {key: spec[key] for key in keywords if key in spec}
        if spec.get("nullable") and "type" in prop:
            prop["type"] = [prop["type"], "null"]
        properties[name] = prop
    return {"type": "object", "properties": properties, "required": list(schema.get("required") or [])}


class SchemaInput:
    """The input as generated fields, validated against the schema."""

    def __init__(self, schema: dict) -> None:
        from jsonschema import Draft7Validator

        required = set(schema.get("required") or [])
        self.fields = [Field(name, spec, name in required) for name, spec in (schema.get("properties") or {}).items()
                       if spec.get("editor") != "hidden"]
        self.validator = Draft7Validator(apify_to_json_schema(schema))
        self.widget = _widgets().VBox([field.widget for field in self.fields])

    def field(self, name: str) -> Field:
        return next(field for field in self.fields if field.name == name)

    def value(self) -> dict:
        data = {}
        for field in self.fields:
            include, value = field.value()
            if include:
                data[field.name] = value
        errors = sorted(self.validator.iter_errors(data), key=lambda e: list(e.path))
        if errors:
            raise InputValidationError("; ".join(_describe(error) for error in errors))
        return data


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error.path) or "input"
    return f"{where}: {error.message}"


class JsonInput:
    """A JSON editor for actors without a schema (any text when the content type is not JSON)."""

    def __init__(self, initial: str = "{}") -> None:
        self.widget = _widgets().Textarea(value=initial, description="Input", style=STYLE,
                                          layout={"width": "95%", "height": "8em"})

    def value(self, content_type: str) -> Any:
        text = self.widget.value
        if not content_type.split(";")[0].strip().lower().endswith("json"):
            return text
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise InputValidationError(f"The input is not valid JSON: {exc}.") from None


# -- the form --------------------------------------------------------------------------------------


class RunForm:
    """Widgets for one actor's run settings; ``start()`` is what the Run button does."""

    def __init__(self, name: str, *, client: Client | None = None) -> None:
        w = _widgets()
        self.name = name
        self.client = resolve(client)
        actor = get_actor(name, client=self.client)
        defaults = actor.get("defaultRunOptions") or {}
        choices = build_choices(name, client=self.client)
        self.run: Run | None = None
        self.last_message = ""  # the message line as plain text
        self.view: LiveView | None = None

        choices = choices or ["latest"]
        default_build = defaults.get("build") if defaults.get("build") in choices else choices[0]
        self.build = w.Dropdown(options=choices, value=default_build, description="Build", style=STYLE)
        self.timeout = w.BoundedIntText(value=int(defaults.get("timeoutSecs") or 0), min=0, max=MAX_TIMEOUT_SECS,
                                        description="Timeout (s, 0 = none)", style=STYLE)
        memory = int(defaults.get("memoryMbytes") or 1024)
        self.memory = w.Dropdown(options=[(f"{m} MB", m) for m in ALLOWED_MEMORY_MB], description="Memory",
                                 value=memory if memory in ALLOWED_MEMORY_MB else 1024, style=STYLE)
        schema = input_schema(name, client=self.client)
        self.schema_input: SchemaInput | None = SchemaInput(schema) if schema else None
        self.json_input: JsonInput | None = None if schema else JsonInput()
        input_widget = (self.schema_input or self.json_input).widget  # type: ignore[union-attr]
        self.content_type = w.Combobox(value="application/json", options=["application/json", "text/plain"],
                                       description="Content type", style=STYLE, disabled=bool(schema))
        self.message = w.HTML("")
        self.output = w.HTML("")
        self.run_button = w.Button(description="Run", button_style="success", icon="play")
        self.abort_button = w.Button(description="Abort", button_style="danger", icon="stop", disabled=True)
        self.resurrect_button = w.Button(description="Resurrect", icon="redo", disabled=True)
        self.run_button.on_click(lambda _: self.start())
        self.abort_button.on_click(lambda _: self.abort())
        self.resurrect_button.on_click(lambda _: self.resurrect())
        advanced = w.Accordion(children=[w.VBox([self.build, self.content_type])], titles=("Advanced",))
        self.widget = w.VBox([
            w.HTML(f"<b>Run actor <code>{html.escape(name)}</code></b>"),
            w.HBox([self.memory, self.timeout]), input_widget, advanced,
            w.HBox([self.run_button, self.abort_button, self.resurrect_button]), self.message, self.output,
        ])

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = f"Run-settings form of {self.name} (a widget: it needs a live kernel)"
        return bundle

    def input_value(self) -> Any:
        """The input as it would be sent; InputValidationError when it is not valid."""
        if self.schema_input is not None:
            return self.schema_input.value()
        return self.json_input.value(self.content_type.value)  # type: ignore[union-attr]

    def _say(self, text: str, error: bool = False) -> None:
        self.last_message = text
        colour = "#c62828" if error else "#2e7d32"
        self.message.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"

    def _act(self, action: Any) -> Run | None:
        """Run a button's action; errors become the message line instead of a traceback."""
        try:
            return action()
        except ActorsError as exc:
            self._say(str(exc), error=True)
            return None

    def start(self) -> Run | None:
        def go() -> Run:
            run_input = self.input_value()
            content_type = None if self.schema_input else self.content_type.value
            run = start(self.name, run_input, memory=self.memory.value, timeout=self.timeout.value,
                        build=self.build.value, content_type=content_type, client=self.client)
            self._watch(run, f"Started run {run.id}.")
            return run

        return self._act(go)

    def abort(self) -> Run | None:
        if self.run is None:
            return None
        run = self._act(self.run.abort)
        if run is not None:
            self._say(f"Aborting run {run.id}.")
        return run

    def resurrect(self) -> Run | None:
        if self.run is None:
            return None

        def go() -> Run:
            run = self.run.resurrect()  # type: ignore[union-attr]
            self._watch(run, f"Resurrected run {run.id}.")
            return run

        return self._act(go)

    def _watch(self, run: Run, message: str) -> None:
        if self.view is not None:
            self.view.stop()
        self.run = run
        self.abort_button.disabled = False
        self.resurrect_button.disabled = False
        self.view = LiveView(run, sink=lambda bundle: setattr(self.output, "value", bundle["text/html"]))
        self.view.display()
        self.view.start()
        self._say(message)


def form(name: str, *, client: Client | None = None) -> RunForm:
    """The run-settings form of an actor (show it as a cell's result or with ``display``)."""
    return RunForm(name, client=client)


__all__ = ["RunForm", "form", "apify_to_json_schema"]
