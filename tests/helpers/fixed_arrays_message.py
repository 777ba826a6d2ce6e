"""A test-only message with fixed-length arrays of structs and strings (no shipped schema has one).

Kept apart because pycdr2 resolves field types at run time, which string annotations
(``from __future__ import annotations``) defeat for subscripted types.
"""

from dataclasses import dataclass

from pycdr2 import IdlStruct
from pycdr2.types import array

from edgenode.messages import Time


@dataclass
class FixedArrays(IdlStruct, typename="edgenode_test.msg.FixedArrays"):
    stamps: array[Time, 2]
    names: array[str, 2]
