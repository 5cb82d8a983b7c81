"""Socket.IO arguments across the contract: a JSON array whose binary values (at any
depth) are ``{"_placeholder": true, "num": N}`` pointing into the attachments, as
socket.io-parser does it. Binary arrives as ``bytes``; ``bytes``, ``bytearray`` and
``memoryview`` may be sent."""

import json

from wit_world.imports import types

_BINARY = (bytes, bytearray, memoryview)


def decode(args: types.Args) -> list:
    """The contract's ``args`` as Python values, binary as ``bytes``."""
    attachments = args.attachments

    def hook(obj):
        num = obj.get("num")
        if obj.get("_placeholder") is True and isinstance(num, int) and 0 <= num < len(attachments):
            return bytes(attachments[num])
        return obj

    values = json.loads(args.json, object_hook=hook)
    return values if isinstance(values, list) else [values]


def encode(values) -> types.Args:
    """Python values (a list of arguments) as the contract's ``args``."""
    attachments = []

    def walk(value):
        if isinstance(value, _BINARY):
            attachments.append(bytes(value))
            return {"_placeholder": True, "num": len(attachments) - 1}
        if isinstance(value, dict):
            return {str(k): walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        return value

    text = json.dumps(walk(list(values)), separators=(",", ":"), ensure_ascii=False)
    return types.Args(text, attachments)
