"""Frame file names: parse the frame number out of a name, and make a camera's frame name.

Cameras write `frame_<camera>_<number:09d>.jpg`. The sender only needs the number (the last
run of digits before the extension) to order frames, predict the next one and spot gaps;
the trigger server needs a strict parse of a full frame id.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# The last run of digits in the name, before the extension (if any). [0-9], not \d: \d
# matches any Unicode digit, and int() would accept those too.
_NUMBER_IN_NAME = re.compile(r"^(?P<prefix>.*?)(?P<digits>[0-9]+)(?P<suffix>(?:\.[^.0-9]*)?)\Z")
# A full frame id as cameras write it: frame_camera01_000046836.jpg
_FRAME_ID = re.compile(
    r"^frame_(?P<camera>[A-Za-z0-9][A-Za-z0-9_-]{0,63})_(?P<number>[0-9]{1,18})\.jpg\Z"
)

FRAME_DIGITS = 9


class NumberedName(NamedTuple):
    """A name split around its frame number, so neighbours can be named."""

    prefix: str
    number: int
    width: int
    suffix: str

    def with_number(self, number: int) -> str:
        return f"{self.prefix}{number:0{self.width}d}{self.suffix}"


def split_number(name: str) -> NumberedName | None:
    """Split `frame_camera01_000046836.jpg` into prefix, 46836, width 9, `.jpg`; None: no digits."""
    match = _NUMBER_IN_NAME.match(name)
    if match is None:
        return None
    digits = match["digits"]
    return NumberedName(match["prefix"], int(digits), len(digits), match["suffix"])


def number_between(name: str, prefix: str, suffix: str) -> int | None:
    """The number of `name` if it is `prefix`, digits, `suffix`, else None.

    For a prefix and suffix that `split_number` gave, this is `split_number(name).number` when
    its prefix and suffix are the same (a prefix from it never ends in a digit, and a suffix
    holds none), at a third of the cost: a ring of 5,000 names is parsed at every trigger.
    """
    end = len(name) - len(suffix)
    if end <= len(prefix) or not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    digits = name[len(prefix) : end]
    return int(digits) if digits.isascii() and digits.isdigit() else None


def frame_number(name: str) -> int | None:
    parts = split_number(name)
    return parts.number if parts else None


def frame_name(camera: str, number: int, ext: str = ".jpg") -> str:
    """The file name camera `camera` gives frame `number`."""
    return f"frame_{camera}_{number:0{FRAME_DIGITS}d}{ext}"


class FrameId(NamedTuple):
    camera: str
    number: int


def parse_frame_id(frame_id: str) -> FrameId:
    """Strictly parse a trigger's frame id; raises ValueError with a readable reason."""
    match = _FRAME_ID.match(frame_id)
    if match is None:
        raise ValueError(
            f"frame id {frame_id!r} is not a frame file name like 'frame_camera01_000046836.jpg'"
        )
    return FrameId(match["camera"], int(match["number"]))
