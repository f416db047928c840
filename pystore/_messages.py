"""Checks and parsing of the protobuf messages callers hand in and get back.

One place for the errors every backend and layer raises the same way: a
message or message class of the wrong type (``TypeError``) and stored bytes
that do not parse as the asked type (``InvalidMessageError``).  A leaf
module: it imports only protobuf and the error tree, so the public API and
both backends can use it without importing one another.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from .errors import InvalidMessageError

__all__ = ["check_message", "check_type", "decode_error", "parse_into"]

M = TypeVar("M", bound=Message)


def check_message(msg: object) -> Message:
    """``msg`` if it is a protobuf message, else ``TypeError``."""
    if not isinstance(msg, Message):
        raise TypeError(f"msg must be a protobuf message, not {type(msg).__name__}")
    return msg


def check_type(msg_type: object, what: str = "msg_type") -> type[Message]:
    """``msg_type`` if it is a protobuf message class, else ``TypeError``."""
    if not (isinstance(msg_type, type) and issubclass(msg_type, Message)):
        raise TypeError(f"{what} must be a protobuf message class, not {msg_type!r}")
    return msg_type


def decode_error(where: str, msg: Message, exc: Exception) -> InvalidMessageError:
    """The error for stored bytes of ``where`` that do not parse as ``msg``'s type."""
    return InvalidMessageError(
        f"{where}: stored bytes do not parse as {msg.DESCRIPTOR.full_name}: {exc}"
    )


def parse_into(msg: M, data: bytes, where: str, id: str | None = None) -> M:
    """Parse ``data`` into ``msg``; the error names ``where`` (``where/id``
    when id is given, formatted only on error: a hot path)."""
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise decode_error(where if id is None else f"{where}/{id}", msg, exc) from None
    return msg
