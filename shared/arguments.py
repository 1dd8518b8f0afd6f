"""A task's arguments checked against its signature and type hints, the way they will travel: as JSON.

``Arguments(fn)`` binds a call to ``fn``'s signature (arity, names, defaults) and validates the
bound values with pydantic in strict JSON mode: what a worker receives is what ``json.loads``
gives back, so a ``tuple[int, int]`` parameter accepts a list, a ``float`` accepts an int, and
``"6"`` is not an int. The same check runs at submit (nothing is enqueued on failure) and in
the worker (a bad message goes to the dead-letter queue / failed registry with the reason).

A call's *key* is its canonical JSON: the validated values of every parameter, defaults
included, in the signature's order. Two calls with the same meaning (``f(1)`` and
``f(1, scale=1.0)``, ``f(x=2, y=3)`` and ``f(2, 3)``) have the same key; the result store
keeps one result per task and key.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model


class InvalidArguments(ValueError):
    """A call that must never be enqueued or run: wrong arity, wrong types, or not JSON."""


def dumps(value: Any) -> str:
    """Canonical JSON text: no spaces, keys sorted (equal values give equal text)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def _model(fn: Callable[..., Any], signature: inspect.Signature) -> type[BaseModel]:
    try:
        hints = get_type_hints(fn)
    except Exception:  # an unresolvable forward reference: check what can be checked
        hints = {}
    fields: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        annotation: Any = hints.get(name, Any)
        default: Any
        if param.kind is param.VAR_POSITIONAL:
            annotation, default = list[annotation], []
        elif param.kind is param.VAR_KEYWORD:
            annotation, default = dict[str, annotation], {}
        else:
            default = ... if param.default is param.empty else param.default
        fields[name] = (annotation, default)
    config = ConfigDict(strict=True, arbitrary_types_allowed=False, extra="forbid")
    return create_model(f"{fn.__qualname__}_arguments", __config__=config, **fields)


class Checked(NamedTuple):
    """A valid call: what to call the function with, and the call's canonical key."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    key: str


class Arguments:
    """The argument check and canonical key of one function."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.name = fn.__qualname__
        self.signature = inspect.signature(fn)
        self.model = _model(fn, self.signature)
        self.params = list(self.signature.parameters.values())

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name, defaults applied; raise naming what is wrong."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArguments(f"{self.name}(): {exc}") from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def validate(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Checked:
        """Check a call as JSON; return the arguments to call the function with, coerced as the
        type hints say (a list for a tuple parameter becomes a tuple, and so on), and its key."""
        arguments = self.bind(args, kwargs)
        try:
            text = dumps(arguments)
        except (TypeError, ValueError):
            raise InvalidArguments(self._not_json(arguments)) from None
        try:
            checked = self.model.model_validate_json(text)
        except ValidationError as exc:
            raise InvalidArguments(self._explain(exc)) from None
        call_args: list[Any] = []
        call_kwargs: dict[str, Any] = {}
        for param in self.params:
            value = getattr(checked, param.name)
            if param.kind is param.VAR_POSITIONAL:
                call_args.extend(value)
            elif param.kind is param.VAR_KEYWORD:
                call_kwargs.update(value)
            elif param.kind is param.KEYWORD_ONLY:
                call_kwargs[param.name] = value
            else:
                call_args.append(value)
        as_json = checked.model_dump(mode="json")
        key = dumps([as_json[p.name] for p in self.params])
        return Checked(tuple(call_args), call_kwargs, key)

    def key(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        """The canonical JSON of a valid call (raise InvalidArguments otherwise)."""
        return self.validate(args, kwargs).key

    def _not_json(self, arguments: Mapping[str, Any]) -> str:
        for name, value in arguments.items():
            try:
                dumps(value)
            except (TypeError, ValueError):
                return f"{name} must be a JSON value, got {type(value).__name__} {value!r:.40}"
        return "arguments must be JSON values"  # pragma: no cover - one of them failed above

    def _explain(self, exc: ValidationError) -> str:
        parts = []
        for error in exc.errors()[:3]:
            where = ".".join(str(p) for p in error["loc"])
            got = error.get("input")
            shown = f", got {type(got).__name__} {got!r:.40}" if error["type"] != "missing" else ""
            parts.append(f"{where}: {error['msg']}{shown}")
        more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        return f"{self.name}(): " + "; ".join(parts) + more
