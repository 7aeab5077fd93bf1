"""Unknown enum numbers in requests, refused at the edge for every RPC.

proto3 enums are open: a client may send any int32 (``kind=99``) and the Python message keeps it.
Servicers map enums with dict lookups that silently fall back to a default, so the edge
interceptor checks every enum field of every request message once, recursively (nested and
repeated messages, map values), against its descriptor — no servicer can forget one.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from services.kit.errors import FieldViolation, ServiceError

__all__ = ["check_enums", "enum_violations", "may_hold_enums"]

# A hostile request could hold thousands of bad values; the client needs the first few.
_MAX_VIOLATIONS = 20


def _repeated(field: FieldDescriptor) -> bool:
    # protobuf 7 dropped ``label``; older 5.x releases lack ``is_repeated``.
    is_repeated = getattr(field, "is_repeated", None)
    return bool(is_repeated) if is_repeated is not None else field.label == FieldDescriptor.LABEL_REPEATED


def _bad(field: FieldDescriptor, value: int) -> bool:
    return value not in field.enum_type.values_by_number


def _describe(field: FieldDescriptor, value: int) -> str:
    return f"unknown value {value} of {field.enum_type.full_name}"


def enum_violations(message: Message, prefix: str = "") -> list[FieldViolation]:
    """One violation per enum value ``message`` holds that its enum does not define, with paths
    like ``timeline.tracks[0].clips[1].fit`` (at most 20)."""
    out: list[FieldViolation] = []
    _walk(message, prefix, out)
    return out


def _walk(message: Message, prefix: str, out: list[FieldViolation]) -> None:
    for field, value in message.ListFields():
        if len(out) >= _MAX_VIOLATIONS:
            return
        path = f"{prefix}{field.name}"
        if field.type == FieldDescriptor.TYPE_ENUM:
            if _repeated(field):
                out.extend(FieldViolation(f"{path}[{i}]", _describe(field, v)) for i, v in enumerate(value) if _bad(field, v))
            elif _bad(field, value):
                out.append(FieldViolation(path, _describe(field, value)))
        elif field.type == FieldDescriptor.TYPE_MESSAGE and may_hold_enums(field.message_type):
            if _is_map(field):
                _walk_map(field, value, path, out)
            elif _repeated(field):
                for i, item in enumerate(value):
                    _walk(item, f"{path}[{i}].", out)
            else:
                _walk(value, f"{path}.", out)
    del out[_MAX_VIOLATIONS:]


def _is_map(field: FieldDescriptor) -> bool:
    return bool(field.message_type.GetOptions().map_entry)


def _walk_map(field: FieldDescriptor, value: object, path: str, out: list[FieldViolation]) -> None:
    value_field = field.message_type.fields_by_name["value"]
    for key, item in value.items():  # type: ignore[attr-defined]
        item_path = f"{path}[{key!r}]"
        if value_field.type == FieldDescriptor.TYPE_ENUM:
            if _bad(value_field, item):
                out.append(FieldViolation(item_path, _describe(value_field, item)))
        elif value_field.type == FieldDescriptor.TYPE_MESSAGE:
            _walk(item, f"{item_path}.", out)


_HOLDS_ENUMS: dict[str, bool] = {}


def may_hold_enums(descriptor: Descriptor) -> bool:
    """Whether any field below ``descriptor`` is an enum (cached per type: skips subtrees such as
    Timestamp on every request). A full search per type, so recursive types are answered right."""
    cached = _HOLDS_ENUMS.get(descriptor.full_name)
    if cached is None:
        seen: set[str] = set()
        pending = [descriptor]
        cached = False
        while pending and not cached:
            d = pending.pop()
            if d.full_name in seen:
                continue
            seen.add(d.full_name)
            for field in d.fields:
                if field.type == FieldDescriptor.TYPE_ENUM:
                    cached = True
                elif field.type == FieldDescriptor.TYPE_MESSAGE:
                    pending.append(field.message_type)
        _HOLDS_ENUMS[descriptor.full_name] = cached
    return cached


def check_enums(message: Message) -> None:
    """Raises INVALID_ARGUMENT (reason INVALID_ARGUMENT, one BadRequest violation per value)."""
    if not may_hold_enums(message.DESCRIPTOR):
        return  # most requests: one cached lookup per call instead of a walk
    violations = enum_violations(message)
    if violations:
        first = violations[0]
        raise ServiceError.invalid_argument(
            "INVALID_ARGUMENT", f"{first.field}: {first.description}", violations=tuple(violations)
        )
