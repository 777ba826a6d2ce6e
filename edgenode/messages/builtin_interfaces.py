"""builtin_interfaces: Time and Duration."""
# No "from __future__ import annotations" here: pycdr2 resolves the field annotations itself.

from dataclasses import dataclass
from typing import TypeVar

from pycdr2 import IdlStruct
from pycdr2.types import int32, uint32

NANOS_PER_SECOND = 1_000_000_000

SpanT = TypeVar("SpanT", bound="_Nanoseconds")


class _Nanoseconds:
    """Conversions shared by Time and Duration (seconds + nanoseconds)."""

    sec: int
    nanosec: int

    def __init__(self, sec: int = 0, nanosec: int = 0) -> None: ...  # provided by the dataclass

    @classmethod
    def from_nanos(cls: type[SpanT], nanos: int) -> SpanT:
        """Split nanoseconds into seconds and nanoseconds (floor division, as the reference does)."""
        sec, nanosec = divmod(int(nanos), NANOS_PER_SECOND)
        return cls(sec, nanosec)

    def to_nanos(self) -> int:
        """Total nanoseconds."""
        return self.sec * NANOS_PER_SECOND + self.nanosec


@dataclass
class Time(_Nanoseconds, IdlStruct, typename="builtin_interfaces.msg.Time"):
    """A point in time (or, in Detect's timing fields, a duration)."""

    sec: int32 = 0
    nanosec: uint32 = 0


@dataclass
class Duration(_Nanoseconds, IdlStruct, typename="builtin_interfaces.msg.Duration"):
    """A signed span of time."""

    sec: int32 = 0
    nanosec: uint32 = 0
