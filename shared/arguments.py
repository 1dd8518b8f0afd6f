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
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model


class InvalidArguments(ValueError):
    """A call that must never be enqueued or run: wrong arity, wrong types, or not JSON."""


def dumps(value: Any) -> str:
    """Canonical JSON text: no spaces, keys sorted (equal values give equal text)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def _model(fn: Callable[..., Any], signature: inspect.Signature) -> type[BaseModel]:
    try:
        hints = get_type_hints(fn, include_extras=True)
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
    config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")
    return create_model(f"{fn.__qualname__}_arguments", __config__=config, **fields)


class Checked:
    """A valid call: what to call the function with, and (worked out when asked) its key."""

    __slots__ = ("_key", "args", "kwargs")

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any], key: str | None = None) -> None:
        self.args = args
        self.kwargs = kwargs
        self._key = key

    @property
    def key(self) -> str:
        if self._key is None:  # the fast path's: every parameter given by position, JSON-native
            self._key = dumps(list(self.args))
        return self._key


#: Types whose strict check on Python values accepts exactly what their strict check on the same
#: values sent as JSON accepts (no tuple, set, date...: JSON turns those into lists and strings).
_PLAIN = (int, float, str, bool, type(None))


def _plain(annotation: Any) -> bool:
    """Whether ``annotation`` is built from ``_PLAIN`` types, lists, str-keyed dicts, unions and
    ``Annotated`` constraints only: then a Python value it accepts is a JSON value it accepts."""
    if annotation in _PLAIN:
        return True
    origin, params = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _plain(params[0])
    if origin is list:
        return all(map(_plain, params))
    if origin is dict:
        return len(params) == 2 and params[0] is str and _plain(params[1])
    if origin in (Union, UnionType):
        return all(map(_plain, params))
    return False


class Arguments:
    """The argument check and canonical key of one function."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.name = fn.__qualname__
        self.signature = inspect.signature(fn)
        self.model = _model(fn, self.signature)
        self.params = list(self.signature.parameters.values())
        self._fast = self._fast_check(fn)

    def _fast_check(self, fn: Callable[..., Any]) -> TypeAdapter[Any] | None:
        """For a function of plain positional parameters: one check of the args tuple in Python
        (~0.5 us, where the JSON round trip costs ~25 us) that accepts exactly what it would."""
        if not all(p.kind is p.POSITIONAL_OR_KEYWORD for p in self.params):
            return None
        try:
            hints = get_type_hints(fn, include_extras=True)
        except Exception:
            return None
        annotations = [hints.get(p.name) for p in self.params]
        if not annotations or not all(a is not None and _plain(a) for a in annotations):
            return None
        config = ConfigDict(strict=True, allow_inf_nan=False)
        return TypeAdapter(tuple[tuple(annotations)], config=config)  # type: ignore[arg-type,misc]

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
        if self._fast is not None and not kwargs and len(args) == len(self.params):
            try:
                return Checked(self._fast.validate_python(tuple(args)), {})
            except ValidationError:
                pass  # the JSON check below has the last word, and the message
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
            name, *path = error["loc"]
            where = str(name) + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
            got = error.get("input")
            shown = f", got {type(got).__name__} {got!r:.40}" if error["type"] != "missing" else ""
            parts.append(f"{where}: {error['msg']}{shown}")
        more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        return f"{self.name}(): " + "; ".join(parts) + more
