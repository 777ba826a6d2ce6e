"""std_msgs: Header."""


from dataclasses import dataclass, field

from pycdr2 import IdlStruct

from edgenode.messages.builtin_interfaces import Time


@dataclass
class Header(IdlStruct, typename="std_msgs.msg.Header"):
    """Stamp and coordinate frame of a message."""

    stamp: Time = field(default_factory=Time)
    frame_id: str = ""
