"""One setting in the config form: a typed input built from its schema spec.

The widget is chosen from the spec (checkbox for bools, a select for choices, a
number input for numbers, text for strings; lists are written comma-separated and
tables as TOML inline tables). Every edit is checked with the core's own ``coerce``,
so the message under the field is word for word what ``carexpert config validate``
would print.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select

from carexpert.config import FieldSpec
from carexpert.config.validate import coerce


def display_value(spec: FieldSpec, value: Any) -> str:
    """How a value is written in a text input."""
    if spec.type is list:
        return ", ".join(str(v) for v in value)
    if spec.type is dict:
        return "{ " + ", ".join(f'{k} = "{v}"' for k, v in value.items()) + " }" if value else "{}"
    if spec.type is float:
        return repr(float(value))
    return str(value)


def parse_text(spec: FieldSpec, raw: str) -> Any:
    """Read what was typed as a value of the spec's type (coerce judges it afterwards)."""
    text = raw.strip()
    if spec.type is str:
        return raw
    if spec.type is list:
        if text.startswith("["):
            try:
                return tomllib.loads(f"v = {text}")["v"]
            except tomllib.TOMLDecodeError:
                return raw
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


class ConfigField(Vertical):
    """Label, input and (when the value is wrong) the schema's message."""

    DEFAULT_CSS = """
    ConfigField {
        height: auto;
        & > Horizontal { height: auto; }
        & .name { width: 24; color: $text-muted; padding-right: 1; text-wrap: nowrap; text-overflow: ellipsis; }
        & Input, & Select { width: 1fr; }
        & Checkbox { width: auto; }
        & .problem { display: none; color: $error; padding-left: 24; width: 1fr; }
        &.-invalid {
            & .problem { display: block; }
            & .name { color: $error; text-style: bold; }
        }
        &:focus-within .name { color: $primary; text-style: bold; }
        &.-invalid:focus-within .name { color: $error; }  /* a wrong value stays red while edited */
    }
    """

    @dataclass
    class Edited(Message):
        """The user changed the field; ``problem`` is None when the value is valid."""

        field: ConfigField
        value: Any
        problem: str | None

    def __init__(self, spec: FieldSpec, value: Any, problem: str | None = None):
        super().__init__(id=f"field-{spec.section}-{spec.name}", classes="-invalid" if problem else None)
        self.spec = spec
        self._initial = value
        self._initial_problem = problem
        self._last_reported: tuple[Any, str | None] = (value, None)

    @property
    def key(self) -> str:
        return self.spec.key

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label(self.spec.name, classes="name")
            yield self._make_input(self._initial)
        yield Label(self._initial_problem or "", classes="problem")

    def _make_input(self, value: Any) -> Widget:
        spec, name = self.spec, self.spec.key
        if spec.type is bool:
            return Checkbox("on" if value else "off", value=bool(value), compact=True, name=name)
        if spec.choices:
            return Select([(str(c), c) for c in spec.choices], value=value, allow_blank=False,
                          compact=True, name=name)
        kind = {int: "integer", float: "number"}.get(spec.type, "text")
        return Input(display_value(spec, value), type=kind, compact=True, name=name,
                     select_on_focus=False, valid_empty=not spec.nonempty)

    @property
    def input(self) -> Widget:
        return self.query_one("Input, Select, Checkbox")

    def current(self) -> tuple[Any, str | None]:
        """The value shown now and what is wrong with it (None when it is valid)."""
        widget = self.input
        if isinstance(widget, Checkbox):
            value: Any = widget.value
        elif isinstance(widget, Select):
            value = widget.value
        else:
            value = parse_text(self.spec, widget.value)
        checked, problem = coerce(self.spec, value)
        return (checked if problem is None else value), problem

    def show_value(self, value: Any) -> None:
        """Show ``value`` (from the TOML text) without reporting it as an edit."""
        widget = self.input
        self._last_reported = (value, None)
        with self.prevent(Input.Changed, Select.Changed, Checkbox.Changed):
            if isinstance(widget, Checkbox):
                widget.value = bool(value)
                widget.label = "on" if value else "off"
            elif isinstance(widget, Select):
                if value in (self.spec.choices or ()):
                    widget.value = value
            elif parse_text(self.spec, widget.value) != value:
                widget.value = display_value(self.spec, value)

    def show_problem(self, problem: str | None) -> None:
        self.set_class(problem is not None, "-invalid")
        self.query_one(".problem", Label).update(problem or "")

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def report_edit(self, event: Message) -> None:
        event.stop()
        if isinstance(event, Checkbox.Changed):
            event.checkbox.label = "on" if event.value else "off"
        value, problem = self.current()
        if (value, problem) == self._last_reported:
            return  # a widget echoing a value it was given, not an edit
        self._last_reported = (value, problem)
        self.show_problem(problem)
        self.post_message(self.Edited(self, value, problem))
