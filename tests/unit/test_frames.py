"""Frame names: the number is found, neighbours are named the same way, ids parse strictly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camxfer.frames import (
    FRAME_DIGITS,
    NumberedName,
    frame_name,
    frame_number,
    number_between,
    parse_frame_id,
    split_number,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("frame_camera01_000046836.jpg", NumberedName("frame_camera01_", 46836, 9, ".jpg")),
        ("frame_camera01_000000000.jpg", NumberedName("frame_camera01_", 0, 9, ".jpg")),
        ("img7.jpeg", NumberedName("img", 7, 1, ".jpeg")),
        ("123", NumberedName("", 123, 3, "")),
        ("cam2_shot_0042.JPG", NumberedName("cam2_shot_", 42, 4, ".JPG")),
        ("v1.2.jpg", NumberedName("v1.", 2, 1, ".jpg")),
    ],
)
def test_split_number(name: str, expected: NumberedName) -> None:
    assert split_number(name) == expected
    assert expected.with_number(expected.number) == name
    assert frame_number(name) == expected.number


@pytest.mark.parametrize("name", ["frame.jpg", "", "abc", ".jpg", "frame_x.tar.gz"])
def test_names_without_a_number(name: str) -> None:
    assert split_number(name) is None
    assert frame_number(name) is None


def test_neighbours_keep_width_and_order() -> None:
    parts = split_number("frame_camera01_000046836.jpg")
    assert parts is not None
    assert parts.with_number(46837) == "frame_camera01_000046837.jpg"
    assert parts.with_number(46835) == "frame_camera01_000046835.jpg"
    names = [parts.with_number(n) for n in (9, 10, 99, 100, 46836)]
    assert names == sorted(names)  # zero padding keeps name order == number order


def test_frame_name() -> None:
    assert frame_name("camera01", 46836) == "frame_camera01_000046836.jpg"
    assert len(str(frame_name("c", 1)).split("_")[-1].split(".")[0]) == FRAME_DIGITS


@given(
    st.integers(0, 10**FRAME_DIGITS - 1),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True),
)
def test_frame_name_roundtrip(number: int, camera: str) -> None:
    name = frame_name(camera, number)
    assert frame_number(name) == number
    parsed = parse_frame_id(name)
    assert (parsed.camera, parsed.number) == (camera, number)


@pytest.mark.parametrize(
    "frame_id",
    [
        "",
        "frame_camera01_000046836.png",
        "frame__000046836.jpg",
        "frame_camera01_.jpg",
        "frame_camera01_00004683x.jpg",
        "../frame_camera01_000046836.jpg",
        "frame_camera01_000046836.jpg\n",
        "frame_camera01_0000000000000000001.jpg",  # 19 digits
        "frame_-cam_000000001.jpg",
    ],
)
def test_parse_frame_id_rejects(frame_id: str) -> None:
    with pytest.raises(ValueError):
        parse_frame_id(frame_id)


# Names a ring folder may hold beside its frames: other cameras, other widths, digits in the
# prefix, partial writes, non-ASCII digits, no digits at all.
_NAME_PIECES = st.sampled_from(
    ["frame_", "camera01_", "cam1", "_", ".", "jpg", ".jpg", ".part", "0", "7", "46836", "\u00b2"]
)


@given(
    st.sampled_from(
        ["frame_camera01_000046836.jpg", "img7.jpeg", "123", "v1.2.jpg", "cam2_shot_0042.JPG"]
    ),
    st.lists(_NAME_PIECES, max_size=6).map("".join),
)
def test_number_between_agrees_with_split_number(template_name: str, name: str) -> None:
    """The scan's quick parse gives exactly what split_number would for the template's
    prefix and suffix, for any name."""
    template = split_number(template_name)
    assert template is not None
    parts = split_number(name)
    same_template = parts is not None and (parts.prefix, parts.suffix) == (
        template.prefix,
        template.suffix,
    )
    expected = parts.number if parts is not None and same_template else None
    assert number_between(name, template.prefix, template.suffix) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("frame_camera01_000046836.jpg", 46836),
        ("frame_camera01_46836.jpg", 46836),  # another width: the same frame number
        ("frame_camera02_000046836.jpg", None),  # another camera
        ("frame_camera01_000046836.jpg.part", None),
        ("frame_camera01_.jpg", None),
        ("frame_camera01_0000\u00b2.jpg", None),  # a digit, but not 0-9
        ("frame_camera01_00004x836.jpg", None),
    ],
)
def test_number_between(name: str, expected: int | None) -> None:
    assert number_between(name, "frame_camera01_", ".jpg") == expected
