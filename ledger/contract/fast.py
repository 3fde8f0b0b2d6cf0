"""The contract decoded from its bytes by msgspec, into the models' own instances, for the input it can take.

The models stay the one definition of the contract. From the core schema of their native form (``native.py``:
every Python parser swapped for pydantic-core schemas) a msgspec type is derived mechanically, node by node, with
a function (generated as straight-line code) that turns the decoded ``Struct`` into the model's instance:

- a model: a ``Struct`` of its fields (aliases, defaults; unknown fields refused when the model forbids them); the
  discriminated union on ``event_type``: msgspec's tagged union;
- a string's length and pattern, an integer's bounds, a bool, a string enum, a literal, a nullable, a tuple's
  length: msgspec's own checks (``Meta``), a pattern read as pydantic-core reads it (``$`` only at the very end);
  the pattern that only forbids NUL is checked on the bytes instead (JSON can write NUL only as ``\\u0000``);
- a string or an integer read on by pydantic-core (a date, a date-time, a decimal): the pattern or bounds checked,
  then that very pydantic-core schema reads it, its values kept by input (they are immutable);
- a field's or a model's after-validator (no-info, or with-info on a field): called as pydantic-core calls it.

A model the derivation cannot read (a before-, wrap- or plain-validator, extra fields kept, a post-init) is left
out: its input goes to the models. Whatever the fast decoder refuses, or cannot tell apart, gives None, and the
caller validates the input again with the models, so a refusal reads word for word as the models word it. None
comes for:

- anything msgspec refuses: not JSON, a type, bound, pattern or unknown field the contract refuses, and also what
  only the models take (money as a JSON number with a fraction, the ends of the calendar);
- a key given twice (msgspec keeps the last, the contract refuses the object): every ``":`` of the line is a key
  when no quote is followed by blank space or escaped before a colon, and they must be as many as the fields read;
- anything a validator or a pydantic-core reading raises on.

That it accepts only what the models accept, as the same event, is held by a differential test over generated
valid, mutated and garbage input (tests/contract/test_fast_decode.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple, Union

import msgspec
import orjson
from pydantic import BaseModel
from pydantic_core import CoreSchema, SchemaValidator

_CACHE_MAX = 1 << 14
_NO_NUL = r"^[^\x00]*$"
"""A pattern forbidding NUL alone: checked once on the line's bytes."""
_UNSET = msgspec.UNSET


class Unsupported(Exception):
    """A core-schema node the derivation does not read: the model holding it is left to the models."""


class _Before(Mapping[str, Any]):
    """What a with-info validator reads as ``info.data`` of a Struct converted in place: its fields validated before
    the one validated, as the Struct holds them (converted already)."""

    __slots__ = ("_struct", "_names")

    def __init__(self, struct: Any, names: frozenset[str]) -> None:
        self._struct, self._names = struct, names

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        return getattr(self._struct, name)

    def get(self, name: str, default: Any = None) -> Any:  # what validators call: without Mapping's try/except
        return getattr(self._struct, name) if name in self._names else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class _Info(NamedTuple):
    """What a with-info validator reads of pydantic's ``ValidationInfo``: the fields validated before it."""

    data: dict[str, Any]
    field_name: str
    context: Any = None
    config: Any = None
    mode: str = "python"


@dataclass
class _Plan:
    """A msgspec type and how its decoded value becomes the model's value."""

    type: Any
    kind: str = "plain"  # plain | read | nullable | tuple | model
    inner: _Plan | None = None  # nullable, tuple
    reads: dict[type[Any], tuple[Callable[[str], Any] | None, Callable[[Any], Any] | None]] | None = None
    """read: by the value's JSON kind, the pattern it must match and its reading (None: the value as it is), kept
    in `cache`."""
    cache: dict[Any, Any] | None = None
    build: Callable[[Any], tuple[Any, int]] | None = None  # model: the instance and the keys read
    convert: Callable[[Any], tuple[Any, int]] | None = None  # model: the Struct converted in place, the keys read
    to_model: Callable[[Any], Any] | None = None  # model: the instance of a converted Struct's values
    to_json: Callable[[Any], dict[str, Any]] | None = None  # model: what the model dumps of a converted Struct
    after: list[tuple[Callable[..., Any], bool]] = field(default_factory=list)  # (validator, with info)


def _pattern(pattern: str) -> str:
    """A pydantic-core (Rust) pattern as Python's re reads it alike: ``$`` ends the text, never before a final
    newline."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    if "$" in pattern.replace("\\$", ""):
        raise Unsupported(f"a pattern with an inner $: {pattern!r}")
    re.compile(pattern)
    return pattern


_ALWAYS = {"type", "strict", "metadata", "ref"}


def _meta(node: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    extra = set(node) - _ALWAYS - set(allowed)
    if extra:
        raise Unsupported(f"a {node['type']} schema with {sorted(extra)}")
    return {key: node[key] for key in allowed if key in node}


class _Deriver:
    def __init__(self, definitions: dict[str, Any]) -> None:
        self.definitions = definitions
        self.models: dict[type[Any], _Plan] = {}
        self.readings: dict[str, dict[Any, Any]] = {}  # a cache of values by reading
        self.unions: dict[str, _Plan] = {}
        self.no_nul = False  # some string forbids NUL: the line must not write one

    def plan(self, node: dict[str, Any]) -> _Plan:
        kind = node["type"]
        if kind == "definition-ref":
            return self.plan(self.definitions[node["schema_ref"]])
        if kind == "str":
            meta = _meta(node, ("min_length", "max_length", "pattern"))
            if meta.get("pattern") == _NO_NUL:
                self.no_nul = True
                del meta["pattern"]
            elif "pattern" in meta:
                meta["pattern"] = _pattern(meta["pattern"])
            return _Plan(Annotated[str, msgspec.Meta(**meta)] if meta else str)
        if kind == "int":
            meta = _meta(node, ("ge", "gt", "le", "lt"))
            return _Plan(Annotated[int, msgspec.Meta(**meta)] if meta else int)
        if kind == "bool":
            _meta(node, ())
            return _Plan(bool)
        if kind == "literal":
            expected = _meta(node, ("expected",))["expected"]
            if not expected or not all(type(value) is str for value in expected):
                raise Unsupported("a literal of other than strings")
            return _Plan(Literal[tuple(expected)])
        if kind == "enum":
            _meta(node, ("cls", "members", "sub_type", "missing"))
            cls = node["cls"]
            if node.get("sub_type") != "str" or node.get("missing") is not None or list(cls) != node["members"]:
                raise Unsupported("an enum of other than all its string values")
            return _Plan(cls)
        if kind == "chain":
            return self._chain(node)
        if kind == "nullable":
            inner = self.plan(_meta(node, ("schema",))["schema"])
            return _Plan(Union[inner.type, None], "nullable", inner)  # noqa: UP007 - a type built at run time
        if kind == "union":
            return self._union(node)
        if kind == "tuple":
            return self._tuple(node)
        if kind == "model":
            return self._model(node)
        if kind == "function-after":
            inner = self.plan(_meta(node, ("schema", "function"))["schema"])
            function = node["function"]
            if function["type"] not in ("no-info", "with-info"):
                raise Unsupported("an after-validator of another kind")
            inner.after.append((function["function"], function["type"] == "with-info"))
            return inner
        raise Unsupported(f"a {kind} schema")

    def _chain(self, node: dict[str, Any]) -> _Plan:
        steps = _meta(node, ("steps",))["steps"]
        if len(steps) != 2:
            raise Unsupported("a chain of other than two steps")
        first, then = steps
        if first["type"] == "str" and then["type"] == "enum" and set(first) <= _ALWAYS:
            return self.plan(then)  # a str, then its enum member: msgspec reads an enum from its values alone
        if first["type"] not in ("str", "int") or then["type"] not in ("date", "datetime", "decimal"):
            raise Unsupported("a chain of other steps")
        return self._reading(first, then)

    def _reading(self, first: dict[str, Any], then: dict[str, Any]) -> _Plan:
        """`first` (a string's pattern, an integer's bounds) checked, then `then` read by pydantic-core."""
        if first["type"] == "str":
            meta = _meta(first, ("min_length", "max_length", "pattern"))
            pattern = re.compile(_pattern(meta.pop("pattern"))) if "pattern" in meta else None
            kind: Any = Annotated[str, msgspec.Meta(**meta)] if meta else str
        else:
            kind, pattern = self.plan(first).type, None
        key = repr((first, then))
        if key not in self.readings:
            self.readings[key] = {}
        validate = SchemaValidator(then).validate_python  # `then`: a schema node of the models
        search = pattern.search if pattern is not None else None
        return _Plan(kind, "read", reads={_json_kind(kind): (search, validate)}, cache=self.readings[key])

    def _union(self, node: dict[str, Any]) -> _Plan:
        key = repr(node)
        if key in self.unions:  # one reading (and cache) for every field of the same union: money, say
            return replace(self.unions[key], after=[])
        self.unions[key] = plan = self._new_union(node)
        return replace(plan, after=[])

    def _new_union(self, node: dict[str, Any]) -> _Plan:
        _meta(node, ("choices", "mode"))
        if node.get("mode") != "left_to_right":
            raise Unsupported("a union other than left to right")
        by_kind: dict[type[Any], _Plan] = {}
        for choice in node["choices"]:
            plan = self.plan(choice)
            kind = _json_kind(plan.type)
            if isinstance(choice, tuple) or plan.kind not in ("plain", "read") or plan.after or kind in by_kind:
                raise Unsupported("a union of other than plain values of distinct JSON kinds")
            by_kind[kind] = plan
        types = tuple(plan.type for plan in by_kind.values())
        if all(plan.kind == "plain" for plan in by_kind.values()):
            return _Plan(Union[types])  # noqa: UP007
        reads = {}
        for kind, plan in by_kind.items():
            reads.update(plan.reads or {kind: (None, None)})
        return _Plan(Union[types], "read", reads=reads, cache={})  # noqa: UP007 - str and int values: distinct keys

    def _tuple(self, node: dict[str, Any]) -> _Plan:
        meta = _meta(node, ("items_schema", "variadic_item_index", "min_length", "max_length"))
        items = meta.pop("items_schema")
        if len(items) != 1 or meta.pop("variadic_item_index", None) != 0:
            raise Unsupported("a tuple of other than one repeated item")
        inner = self.plan(items[0])
        kind = tuple[inner.type, ...]  # type: ignore[name-defined]
        return _Plan(Annotated[kind, msgspec.Meta(**meta)] if meta else kind, "tuple", inner)

    def _model(self, node: dict[str, Any], tag: tuple[str, str] | None = None) -> _Plan:
        cls = node["cls"]
        if cls in self.models and tag is None:
            return replace(self.models[cls], after=[])
        _meta(node, ("cls", "schema", "config", "custom_init", "root_model", "post_init"))
        if node.get("custom_init") or node.get("root_model") or node.get("post_init") or cls.__pydantic_post_init__:
            raise Unsupported(f"{cls.__name__}: a custom init, root or post-init")
        extra = node.get("config", {}).get("extra_fields_behavior", "ignore")
        fields = node["schema"]
        if fields["type"] != "model-fields":
            raise Unsupported(f"{cls.__name__}: a validator around its fields")
        _meta(fields, ("fields", "model_name", "computed_fields"))
        if extra not in ("forbid", "ignore") or fields.get("computed_fields"):
            raise Unsupported(f"{cls.__name__}: extra or computed fields")
        plan = _struct_of(self, cls, fields["fields"], forbid=extra == "forbid", tag=tag)
        if tag is None:
            self.models[cls] = plan
        return plan


def _json_kind(kind: Any) -> Any:
    while hasattr(kind, "__metadata__"):
        kind = kind.__origin__
    return kind


def _emit(plan: _Plan, var: str, namespace: dict[str, Any], depth: int = 0, convert: bool = False) -> list[str]:
    """Lines turning the decoded value in `var` into the model's value, in place; keys read are added to n.
    `convert`: a Struct in `var` is converted in place (its values the model's), not made the model's instance."""
    lines: list[str] = []
    namespace["plans"] = number = namespace.get("plans", 0) + 1
    name = f"p{number}"  # a name of its own in the builder
    if plan.kind == "read":
        assert plan.reads is not None
        namespace[f"{name}_cache"] = plan.cache
        lines += [f"r = {name}_cache.get({var})", "if r is None:"]
        for position, (kind, (search, validate)) in enumerate(plan.reads.items()):
            namespace[f"{name}_kind{position}"], namespace[f"{name}_search{position}"] = kind, search
            namespace[f"{name}_read{position}"] = validate
            read = [f"r = {name}_read{position}({var})" if validate else f"r = {var}"]
            if search is not None:
                read[:0] = [f"if not {name}_search{position}({var}):", "    raise ValueError"]
            if len(plan.reads) > 1:
                read = [f"if type({var}) is {name}_kind{position}:", *(f"    {line}" for line in read)]
                if position:
                    read[0] = "el" + read[0]
            lines += [f"    {line}" for line in read]
        if len(plan.reads) > 1:
            lines += ["    else:", "        raise ValueError"]
        lines += [f"    if len({name}_cache) >= {_CACHE_MAX}:", f"        {name}_cache.clear()"]
        lines += [f"    {name}_cache[{var}] = r", f"{var} = r"]
    elif plan.kind == "nullable":
        assert plan.inner is not None
        inner = _emit(plan.inner, var, namespace, depth, convert)
        if inner:
            lines += [f"if {var} is not None:", *(f"    {line}" for line in inner)]
    elif plan.kind == "tuple":
        assert plan.inner is not None
        item = f"x{depth}"
        inner = _emit(plan.inner, item, namespace, depth + 1, convert)
        if inner:
            lines += [f"t{depth} = []", f"for {item} in {var}:", *(f"    {line}" for line in inner)]
            lines += [f"    t{depth}.append({item})", f"{var} = tuple(t{depth})"]
    elif plan.kind == "model":
        namespace[f"{name}_build"] = plan.convert if convert else plan.build
        lines += [f"{var}, k = {name}_build({var})", "n += k"]
    for position, (function, with_info) in enumerate(plan.after):
        if with_info:
            raise Unsupported("a with-info validator on other than a field")
        namespace[f"{name}_after{position}"] = function
        lines.append(f"{var} = {name}_after{position}({var})")
    return lines


def _struct_of(
    deriver: _Deriver, cls: type[Any], fields: dict[str, Any], *, forbid: bool, tag: tuple[str, str] | None
) -> _Plan:
    """A Struct of `cls`'s fields, and the function building `cls`'s instance (and its count of keys read) from
    it, generated as straight-line code: the Struct's values as locals, converted in place, then the instance's
    dict in the model's order."""
    namespace: dict[str, Any] = {"cls": cls, "new": cls.__new__, "setattr": object.__setattr__}
    namespace.update(UNSET=_UNSET, Info=_Info, Before=_Before, astuple=msgspec.structs.astuple)
    keys = 1 if tag else 0  # the tag is a key of its own
    given: list[str] = []  # fields always given (so in the fields set)
    struct_fields: list[tuple[str, Any, bool, str]] = []
    values: list[str] = []  # each field's value, in the model's order
    body: list[str] = []
    in_place: list[str] = []  # the body of `convert`: each value the model's, written back to the Struct
    as_model: list[str] = []  # each field's value in the instance made from a converted Struct, in the model's order
    as_json: list[str] = []  # each field's value as the model dumps it in JSON mode (its dates kept for orjson)
    read_before: list[str] = []  # the fields a with-info validator of a later field sees
    opened = False  # the instance's dict is built as the fields are read (a with-info validator reads it)
    for index, (name, spec) in enumerate(fields.items()):
        _meta(spec, ("schema", "validation_alias", "serialization_alias", "frozen"))
        alias = spec.get("validation_alias", name)
        if not isinstance(alias, str):
            raise Unsupported(f"{cls.__name__}.{name}: an alias path")
        schema = spec["schema"]
        if tag and name == tag[0]:
            if schema.get("type") != "literal" or schema.get("expected") != [tag[1]]:
                raise Unsupported(f"{cls.__name__}.{name}: a discriminator of another shape")
            values.append(f"{name!r}: {tag[1]!r}")
            as_model.append(f"{name!r}: {tag[1]!r}")
            as_json.append(f"{name!r}: {tag[1]!r}")
            read_before.append(name)
            given.append(name)
            if opened:
                body.append(f"    d[{name!r}] = {tag[1]!r}")
            continue
        required, validate_default = True, False
        if schema["type"] == "default":
            _meta(schema, ("schema", "default", "validate_default"))
            required, validate_default = False, schema.get("validate_default", False)
            namespace[f"default{index}"] = schema["default"]
            schema = schema["schema"]
        plan = deriver.plan(schema)
        checks = plan.after
        if any(with_info and not later for (_, with_info), (_, later) in zip(checks, checks[1:], strict=False)):
            raise Unsupported(f"{cls.__name__}.{name}: a no-info validator after a with-info one")
        plan.after = [(function, False) for function, with_info in checks if not with_info]
        var = f"v{index}"
        converted = _emit(plan, var, namespace)
        converting = _emit(plan, var, namespace, convert=True)
        if len(plan.after) < len(checks) and not opened:
            # info.data: the fields validated before this one, in a dict that then grows into the instance's
            body.append(f"    d = {{{', '.join(values)}}}")
            opened = True
        for position, (function, _) in enumerate(item for item in checks if item[1]):
            namespace[f"check{index}_{position}"] = function
            namespace[f"before{index}"] = frozenset(read_before)
            converted.append(f"{var} = check{index}_{position}({var}, Info(d, {name!r}))")
            converting.append(f"{var} = check{index}_{position}({var}, Info(Before(s, before{index}), {name!r}))")
        struct_fields.append((name, plan.type, required, alias))
        values.append(f"{name!r}: {var}")
        as_model.append(f"{name!r}: {_model_of(plan, f's.{name}', namespace)}")
        as_json.append(f"{name!r}: {_json_of(plan, f's.{name}', namespace)}")
        read_before.append(name)
        if required:
            keys += 1
            given.append(name)
            body += [f"    {line}" for line in converted]
            in_place += [f"    {line}" for line in converting]
            if converting:
                in_place.append(f"    s.{name} = {var}")
        else:
            body += [f"    if {var} is UNSET:", f"        {var} = default{index}"]
            body += [f"        {line}" for line in converted if validate_default]
            body += ["    else:", "        n += 1", f"        fields_set.add({name!r})"]
            body += [f"        {line}" for line in converted]
            in_place += [f"    if {var} is UNSET:", f"        {var} = default{index}"]
            in_place += [f"        {line}" for line in converting if validate_default]
            in_place += ["    else:", "        n += 1"]
            in_place += [f"        {line}" for line in converting]
            in_place.append(f"    s.{name} = {var}")
        if opened:
            body.append(f"    d[{name!r}] = {var}")
    namespace["given"] = frozenset(given)
    namespace["every"] = frozenset(read_before)
    unpacked = ", ".join(f"v{index}" for index, (name, _) in enumerate(fields.items()) if not (tag and name == tag[0]))
    lines = [
        "def build(s):",
        f"    {unpacked}, = astuple(s)",
        f"    n = {keys}",
        "    fields_set = set(given)",
        *body,
        "    m = new(cls)",
        f"    setattr(m, '__dict__', {'d' if opened else '{' + ', '.join(values) + '}'})",
        "    setattr(m, '__pydantic_fields_set__', fields_set)",
        "    setattr(m, '__pydantic_extra__', None)",
        "    setattr(m, '__pydantic_private__', None)",
        "    return m, n",
        "def convert(s):",
        f"    {unpacked}, = astuple(s)",
        f"    n = {keys}",
        *in_place,
        "    return s, n",
        "def to_model(s):",
        "    m = new(cls)",
        f"    setattr(m, '__dict__', {{{', '.join(as_model)}}})",
        "    setattr(m, '__pydantic_fields_set__', set(every))",
        "    setattr(m, '__pydantic_extra__', None)",
        "    setattr(m, '__pydantic_private__', None)",
        "    return m",
        "def to_json(s):",
        f"    return {{{', '.join(as_json)}}}",
    ]
    exec(compile("\n".join(lines), f"<fast decoder of {cls.__name__}>", "exec"), namespace)  # noqa: S102 - ours
    options: dict[str, Any] = {"forbid_unknown_fields": forbid, "kw_only": True}  # kw_only: fields in any order
    # What the model gives besides its fields (its properties: an event's business date), the Struct gives alike.
    kept: dict[str, Any] = {}
    for base in reversed(cls.__mro__[: cls.__mro__.index(BaseModel)]):
        kept.update((key, value) for key, value in vars(base).items() if isinstance(value, property))
    if tag:
        if tag[0] in {alias for *_, alias in struct_fields}:
            raise Unsupported(f"{cls.__name__}: the tag {tag[0]} read as a field too")
        options.update(tag_field=tag[0], tag=tag[1])
        kept[tag[0]] = tag[1]  # read as an attribute too, as the model's field is
    struct = msgspec.defstruct(
        f"Fast{cls.__name__}",
        [
            (name, kind, msgspec.field(name=alias) if required else msgspec.field(default=_UNSET, name=alias))
            for name, kind, required, alias in struct_fields
        ],
        namespace=kept,
        **options,
    )
    return _Plan(
        struct,
        "model",
        build=namespace["build"],
        convert=namespace["convert"],
        to_model=namespace["to_model"],
        to_json=namespace["to_json"],
    )


def _model_of(plan: _Plan, value: str, namespace: dict[str, Any]) -> str:
    """The expression of a converted Struct's field `value` as the model holds it: a Struct made the model's."""
    if plan.kind == "model":
        namespace["plans"] = number = namespace.get("plans", 0) + 1
        namespace[f"p{number}_model"] = plan.to_model
        return f"p{number}_model({value})"
    if plan.kind in ("nullable", "tuple"):
        assert plan.inner is not None
        inner = _model_of(plan.inner, "x", namespace)
        if inner == "x":
            return value
        if plan.kind == "nullable":
            return f"(None if {value} is None else {_model_of(plan.inner, value, namespace)})"
        return f"tuple([{inner} for x in {value}])"
    return value


def _json_value(value: Any) -> Any:
    """A value pydantic-core read (`_Deriver._reading`) as the model dumps it in JSON mode, or as orjson writes
    it alike: a Decimal as its text; a date, a date-time (UTC written Z: `JSON_OPTIONS`) left to orjson."""
    return str(value) if type(value) is Decimal else value


JSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z
"""How orjson writes `FastDecoder.to_json`'s values as the models' canonical JSON (``orjson.dumps(model.model_dump(
mode="json"), option=orjson.OPT_SORT_KEYS)``): keys sorted, a date-time at UTC ending in Z as pydantic writes it."""


def _json_of(plan: _Plan, value: str, namespace: dict[str, Any], depth: int = 0) -> str:
    """The expression of a converted Struct's field `value` as the model dumps it in JSON mode: a Struct its dict,
    a tuple a list, a read value `_json_value`'s; a string, an integer, a bool, an enum member as they are (orjson
    writes a member as its value)."""
    if plan.kind == "model":
        namespace["plans"] = number = namespace.get("plans", 0) + 1
        namespace[f"p{number}_json"] = plan.to_json
        return f"p{number}_json({value})"
    if plan.kind == "read":
        namespace["json_value"] = _json_value
        return f"json_value({value})"
    if plan.kind in ("nullable", "tuple"):
        assert plan.inner is not None
        item = f"y{depth}"
        inner = _json_of(plan.inner, item, namespace, depth + 1)
        if inner == item:
            return value  # orjson writes a tuple as a list
        if plan.kind == "nullable":
            return f"(None if {value} is None else {_json_of(plan.inner, value, namespace, depth)})"
        return f"[{inner} for {item} in {value}]"
    return value


def _validated(deriver: _Deriver, node: dict[str, Any], tag: tuple[str, str] | None) -> _Plan:
    """A model (of a tagged union, the tag its own), its no-info after-validators in its build."""
    after: list[Callable[[Any], Any]] = []
    while node["type"] == "function-after":
        _meta(node, ("schema", "function"))
        if node["function"]["type"] != "no-info":
            raise Unsupported("a with-info validator of a model")
        after.insert(0, node["function"]["function"])
        node = node["schema"]
    if node["type"] != "model":
        raise Unsupported(f"a {node['type']} where a model is wanted")
    plan = deriver._model(node, tag=tag)
    build, convert = plan.build, plan.convert
    assert build is not None and convert is not None
    if not after:
        return plan

    def validated(struct: Any) -> tuple[Any, int]:
        instance, keys = build(struct)
        for function in after:
            instance = function(instance)
        return instance, keys

    def converted(struct: Any) -> tuple[Any, int]:
        struct, keys = convert(struct)
        for function in after:
            struct = function(struct)  # reads the fields by name, as it reads the model's
        return struct, keys

    return replace(plan, build=validated, convert=converted)


class FastDecoder:
    """Decodes JSON bytes into the model instance `schema` validates them to, or None: the models' to read."""

    def __init__(self, schema: CoreSchema) -> None:
        node: dict[str, Any] = dict(schema)
        definitions: dict[str, Any] = {}
        if node["type"] == "definitions":
            definitions = {item["ref"]: item for item in node["definitions"]}
            node = node["schema"]
        deriver = _Deriver(definitions)
        self.left_out: dict[str, str] = {}
        """What the derivation left to the models, and why, by tag."""
        self._builds: dict[type[Any], Callable[[Any], tuple[Any, int]]] = {}
        self._converts: dict[type[Any], Callable[[Any], tuple[Any, int]]] = {}
        self._models: dict[type[Any], Callable[[Any], Any]] = {}
        self._jsons: dict[type[Any], Callable[[Any], dict[str, Any]]] = {}
        if node["type"] == "tagged-union":
            _meta(node, ("choices", "discriminator", "custom_error_type", "custom_error_message", "from_attributes"))
            discriminator = node["discriminator"]
            if not isinstance(discriminator, str):
                raise Unsupported("a discriminator that is not a field name")
            structs = []
            for tag, choice in node["choices"].items():
                try:
                    plan = _validated(deriver, choice, (discriminator, tag))
                except Unsupported as why:
                    self.left_out[tag] = str(why)
                    continue
                structs.append(plan.type)
                self._keep(plan)
            kind: Any = Union[tuple(structs)] if structs else None  # noqa: UP007
        else:
            plan = _validated(deriver, node, None)
            kind = plan.type
            self._keep(plan)
        self._no_nul = deriver.no_nul
        self._decoder = msgspec.json.Decoder(kind) if kind is not None else None

    def _keep(self, plan: _Plan) -> None:
        assert plan.build is not None and plan.convert is not None and plan.to_model is not None
        assert plan.to_json is not None
        self._jsons[plan.type] = plan.to_json
        self._builds[plan.type] = plan.build
        self._converts[plan.type] = plan.convert
        self._models[plan.type] = plan.to_model

    def decode(self, data: bytes) -> Any:
        """The instance, or None when the models must read `data`."""
        return self._decode(data, self._builds)

    def decode_struct(self, data: bytes) -> Any:
        """What `decode` gives, as the decoded Struct itself, or None when the models must read `data`: the same
        input taken, after the same checks, each field holding the model's value (a Decimal, a date-time, an enum
        member, a nested Struct so converted), the model's properties and tag readable alike. `as_model` makes the
        model's instance of it."""
        return self._decode(data, self._converts)

    def is_struct(self, value: Any) -> bool:
        """Whether `value` is a Struct `decode_struct` gives."""
        return type(value) in self._models

    def struct_types(self) -> list[type[Any]]:
        """The Struct types `decode_struct` gives, one by model it reads."""
        return list(self._models)

    def as_model(self, struct: Any) -> Any:
        """The model's instance holding the values of a Struct `decode_struct` gave: equal to the one `decode` gives
        of the same input, and dumped alike. Its fields set are all its fields (nothing reads which were given)."""
        return self._models[type(struct)](struct)

    def canonical(self, struct: Any) -> str:
        """The canonical JSON of the model's instance of a Struct `decode_struct` gave, without making it:
        ``orjson.dumps(as_model(struct).model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)``, byte for byte."""
        return orjson.dumps(self._jsons[type(struct)](struct), option=JSON_OPTIONS).decode()

    def _decode(self, data: bytes, made: dict[type[Any], Callable[[Any], tuple[Any, int]]]) -> Any:
        if self._decoder is None:
            return None
        data = data.rstrip(b" \t\r\n")
        # Single bytes first: a compact line has no blank and no backslash outside its strings.
        if b"\\" in data and (b'\\":' in data or self._no_nul and b"\\u0000" in data):
            return None  # a quote escaped before a colon (counted as a key), or a NUL
        if (b" " in data or b"\t" in data or b"\r" in data or b"\n" in data) and (
            b'" ' in data or b'"\t' in data or b'"\r' in data or b'"\n' in data
        ):
            return None  # a key apart from its colon, not counted
        try:
            struct = self._decoder.decode(data)
            instance, keys = made[type(struct)](struct)
        except Exception:  # noqa: BLE001 - any refusal or doubt: the models read it and word it
            return None
        if keys != data.count(b'":'):
            return None  # a key given twice
        return instance
