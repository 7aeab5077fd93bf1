"""The whole-file check of an asset declared as a `.cube` LUT (issue 18).

The sniff saw only the first bytes; before the row turns READY the stored object is read back
(bounded by `MAX_LUT_BYTES`) and parsed with the one parser render uses, so a LUT asset is always a
LUT that render's looks accept. A refusal names the line in a `BadRequest` violation on `content`
(the uploaded bytes) with reason INVALID_LUT; its metadata says the line number.
"""

from __future__ import annotations

import asyncio

from services.kit.cube_lut import MAX_LUT_BYTES, LutError, parse_cube
from services.kit.errors import FieldViolation, ServiceError
from services.storage.objectstore import ObjectStore
from services.storage.reasons import Reason

__all__ = ["check_lut", "lut_error"]


def lut_error(message: str, line: int = 0) -> ServiceError:
    return ServiceError.invalid_argument(
        Reason.INVALID_LUT,
        f"not a valid .cube LUT: {message}",
        violations=(FieldViolation("content", message),),
        metadata={"line": str(line)} if line else {},
    )


async def check_lut(objects: ObjectStore, key: str) -> None:
    """Raises INVALID_ARGUMENT INVALID_LUT unless the object at `key` is a 3D .cube LUT."""
    data = await objects.read(key, 0, MAX_LUT_BYTES + 1)
    if len(data) > MAX_LUT_BYTES:
        raise lut_error(f"larger than {MAX_LUT_BYTES} bytes")
    try:
        # Up to 274,625 rows: parsed off the event loop.
        await asyncio.to_thread(parse_cube, data)
    except LutError as exc:
        raise lut_error(str(exc), exc.line) from None
