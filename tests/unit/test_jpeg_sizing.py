"""Test frames land inside the requested file-size range, reproducibly, as valid JPEGs.

Covers the pure part of `camxfer.tools.generate`: the size range, planning the picture (noise,
and scaling when no JPEG quality reaches the range), picking qualities per frame, padding, and
that every byte depends only on (seed, camera, frame number).
"""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from camxfer.errors import UsageError
from camxfer.tools.generate import (
    MIB,
    FrameMaker,
    SizeRange,
    SizeRangeError,
    encode_jpeg,
    pad_jpeg,
    plan_image,
)


def decoded(data: bytes) -> Image.Image:
    """Open, verify and fully decode a JPEG; fails the test on a broken file."""
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "JPEG"
    return image


@pytest.mark.parametrize(
    ("min_mb", "max_mb", "message"),
    [
        (2.0, 1.0, "must be larger than --min-mb"),
        (1.0, 1.0, "must be larger than --min-mb"),
        (0.0, 1.0, "must be a number more than 0"),
        (float("inf"), 1.0, "must be a number more than 0"),
        (1.0, float("inf"), "must be a finite number"),
        (-1.0, 1.0, "must be a number more than 0"),
        (1.0, 1.00001, "less than 64 bytes apart"),
    ],
)
def test_bad_size_ranges_are_refused_with_a_sentence(
    min_mb: float, max_mb: float, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        SizeRange.from_mib(min_mb, max_mb)


def test_size_range_is_in_whole_bytes_inside_the_mib_bounds() -> None:
    sizes = SizeRange.from_mib(0.5, 1.5)
    assert sizes.low == MIB // 2 and sizes.high == MIB * 3 // 2
    assert sizes.low in sizes and sizes.high in sizes
    assert sizes.low - 1 not in sizes and sizes.high + 1 not in sizes


@pytest.mark.parametrize(
    ("width", "height", "min_mb", "max_mb"),
    [
        (320, 240, 0.05, 0.1),
        (320, 240, 0.02, 0.021),
        (320, 240, 0.05, 0.0505),  # narrower than one quality step: some frames need padding
        (640, 480, 0.2, 0.4),
    ],
)
def test_every_frame_is_a_valid_jpeg_inside_the_range(
    width: int, height: int, min_mb: float, max_mb: float
) -> None:
    sizes = SizeRange.from_mib(min_mb, max_mb)
    plan = plan_image(width, height, sizes, seed=11)
    maker = FrameMaker("camera01", plan, sizes)
    for number in range(25):
        data = maker.make(number)
        assert len(data) in sizes, f"frame {number}: {len(data)} bytes outside {sizes}"
        assert decoded(data).size == (plan.width, plan.height)


def test_a_range_between_two_quality_steps_is_met_by_padding_with_a_comment() -> None:
    sizes = SizeRange.from_mib(0.05, 0.0501)  # 105 bytes wide: no quality lands in it
    maker = FrameMaker("camera01", plan_image(320, 240, sizes, seed=11), sizes)
    for number in range(5):
        data = maker.make(number)
        assert len(data) in sizes
        assert b"\xff\xfe" in data  # a COM segment carries the padding
        decoded(data)


def test_sizes_spread_over_the_range_rather_than_piling_at_one_end() -> None:
    sizes = SizeRange.from_mib(0.05, 0.1)
    maker = FrameMaker("camera01", plan_image(320, 240, sizes, seed=5), sizes)
    lengths = [len(maker.make(number)) for number in range(40)]
    middle = (sizes.low + sizes.high) // 2
    assert any(length < middle for length in lengths)
    assert any(length > middle for length in lengths)


def test_the_requested_picture_size_is_kept_when_the_range_is_reachable() -> None:
    plan = plan_image(1600, 1200, SizeRange.from_mib(1.0, 2.0), seed=1)
    assert (plan.width, plan.height) == (1600, 1200)


def test_the_picture_grows_when_even_the_best_quality_is_too_small() -> None:
    sizes = SizeRange.from_mib(0.5, 0.6)
    plan = plan_image(160, 120, sizes, seed=2)
    assert plan.width > 160 and plan.height > 120
    assert abs(plan.width / plan.height - 4 / 3) < 0.02  # aspect kept
    data = FrameMaker("camera01", plan, sizes).make(0)
    assert len(data) in sizes
    assert decoded(data).size == (plan.width, plan.height)


def test_the_picture_shrinks_when_even_the_worst_quality_is_too_big() -> None:
    sizes = SizeRange.from_mib(0.004, 0.006)
    plan = plan_image(1600, 1200, sizes, seed=3)
    assert plan.width < 1600 and plan.height < 1200
    data = FrameMaker("camera01", plan, sizes).make(0)
    assert len(data) in sizes


@pytest.mark.parametrize(
    ("min_mb", "max_mb"),
    [
        (0.0001, 0.0003),  # smaller than a JPEG's own headers
        (200.0, 300.0),  # would need a picture beyond MAX_PIXELS
    ],
)
def test_an_unreachable_range_is_an_error_not_a_wrong_file(min_mb: float, max_mb: float) -> None:
    with pytest.raises(SizeRangeError, match="cannot make JPEGs"):
        plan_image(320, 240, SizeRange.from_mib(min_mb, max_mb), seed=0)


def test_frames_depend_only_on_seed_camera_and_number() -> None:
    sizes = SizeRange.from_mib(0.05, 0.1)
    plan = plan_image(320, 240, sizes, seed=42)
    forward = FrameMaker("camera01", plan, sizes)
    backward = FrameMaker("camera01", plan, sizes)
    numbers = [0, 1, 2, 7, 1000]
    made_forward = {number: forward.make(number) for number in numbers}
    made_backward = {number: backward.make(number) for number in reversed(numbers)}
    assert made_forward == made_backward
    assert len(set(made_forward.values())) == len(numbers)  # each frame differs

    other_camera = FrameMaker("camera02", plan, sizes).make(0)
    other_seed = FrameMaker("camera01", plan_image(320, 240, sizes, seed=43), sizes).make(0)
    assert other_camera != made_forward[0]
    assert other_seed != made_forward[0]


def small_jpeg() -> bytes:
    return encode_jpeg(Image.new("RGB", (64, 48), (200, 40, 90)), 80)


@settings(max_examples=60, deadline=None)
@given(extra=st.one_of(st.integers(4, 300_000), st.sampled_from([4, 65537, 65538, 65539, 65540])))
def test_padding_reaches_the_exact_size_and_keeps_a_valid_jpeg(extra: int) -> None:
    original = small_jpeg()
    padded = pad_jpeg(original, len(original) + extra)
    assert len(padded) == len(original) + extra
    assert decoded(padded).tobytes() == decoded(original).tobytes()
    assert padded[:2] == b"\xff\xd8"


def test_padding_by_less_than_a_segment_is_refused() -> None:
    original = small_jpeg()
    assert pad_jpeg(original, len(original)) == original
    with pytest.raises(ValueError, match="cannot pad"):
        pad_jpeg(original, len(original) + 3)
