"""DmaBuffer against bytes worked out by hand from the CDR rules (edgefirst-schemas 4.x lacks it)."""

from __future__ import annotations

import edgenode.messages as m

YUYV = int.from_bytes(b"YUYV", "little")


def test_dmabuffer_golden_bytes() -> None:
    message = m.DmaBuffer(m.Header(m.Time(1, 2), "cam"), pid=5, fd=7, width=1920, height=1080, stride=3840,
                          fourcc=YUYV, length=1920 * 1080 * 2)
    expected = bytes.fromhex(
        "00010000"  # encapsulation: CDR little-endian, options 0
        "01000000"  # header.stamp.sec = 1
        "02000000"  # header.stamp.nanosec = 2
        "04000000"  # frame_id length 4, NUL included
        "63616d00"  # "cam\0" (ends 4-aligned: no padding)
        "05000000"  # pid 5
        "07000000"  # fd 7
        "80070000"  # width 1920
        "38040000"  # height 1080
        "000f0000"  # stride 3840
        "59555956"  # fourcc "YUYV"
        "00483f00"  # length 4147200
    )
    assert m.encode(message) == expected
    assert m.decode(m.DmaBuffer, expected) == message


def test_dmabuffer_golden_bytes_with_padding() -> None:
    message = m.DmaBuffer(m.Header(m.Time(1_700_000_000, 999_999_999), "camera"), pid=4321, fd=-1, width=640,
                          height=480, stride=1280, fourcc=int.from_bytes(b"NV12", "little"), length=460800)
    expected = bytes.fromhex(
        "00010000"
        "00f15365"  # sec 1_700_000_000 = 0x6553F100
        "ffc99a3b"  # nanosec 999_999_999 = 0x3B9AC9FF
        "07000000"  # "camera\0" is 7 bytes
        "63616d65726100"
        "00"  # one byte of padding to align pid at 4
        "e1100000"  # pid 4321
        "ffffffff"  # fd -1
        "80020000"  # 640
        "e0010000"  # 480
        "00050000"  # 1280
        "4e563132"  # "NV12"
        "00080700"  # 460800 = 0x070800
    )
    assert m.encode(message) == expected
    assert m.decode(m.DmaBuffer, expected) == message
