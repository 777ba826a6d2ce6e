"""builtin_interfaces: Time and Duration."""
# No "from __future__ import annotations" here: pycdr2 resolves the field annotations itself.


from dataclasses import dataclass

from pycdr2 import IdlStruct
from pycdr2.types import int32, uint32

NANOS_PER_SECOND = 1_000_000_000


@dataclass
class Time(IdlStruct, typename="builtin_interfaces.msg.Time"):
    """A point in time (or, in Detect's timing fields, a duration)."""

    sec: int32 = 0
    nanosec: uint32 = 0

    @classmethod
    def from_nanos(cls, nanos: int) -> "Time":
        """Split nanoseconds into seconds and nanoseconds (floor division, as the reference does)."""
        sec, nanosec = divmod(int(nanos), NANOS_PER_SECOND)
        return cls(sec, nanosec)

    def to_nanos(self) -> int:
        """Total nanoseconds."""
        return self.sec * NANOS_PER_SECOND + self.nanosec


@dataclass
class Duration(IdlStruct, typename="builtin_interfaces.msg.Duration"):
    """A signed span of time."""

    sec: int32 = 0
    nanosec: uint32 = 0

    @classmethod
    def from_nanos(cls, nanos: int) -> "Duration":
        """Split nanoseconds into seconds and nanoseconds."""
        sec, nanosec = divmod(int(nanos), NANOS_PER_SECOND)
        return cls(sec, nanosec)

    def to_nanos(self) -> int:
        """Total nanoseconds."""
        return self.sec * NANOS_PER_SECOND + self.nanosec
