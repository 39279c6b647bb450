import io
import zlib

import numpy as np
import pytest
from PIL import Image

from lugh.llm.vision import MAX_IMAGE_BYTES, UnreadableImage, _proposals, prepare_image


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def test_a_portrait_photo_is_scaled_so_its_long_edge_is_1568_pixels():
    prepared = prepare_image(encoded(Image.new("RGB", (1200, 4000), "navy"), "JPEG"))

    assert (prepared.width, prepared.height) == (470, 1568)
    assert Image.open(io.BytesIO(prepared.data)).size == (470, 1568)


def test_a_small_image_keeps_its_size():
    prepared = prepare_image(encoded(Image.new("RGB", (640, 480), "teal"), "PNG"))

    assert (prepared.media_type, prepared.width, prepared.height) == ("image/jpeg", 640, 480)


def test_a_photo_taken_sideways_is_turned_upright_by_its_exif_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = encoded(Image.new("RGB", (800, 600), "olive"), "JPEG", exif=exif)

    assert prepare_image(data).width == 600


def test_a_noisy_transparent_image_is_shrunk_until_it_fits_in_5_mb():
    noise = np.random.default_rng(7).integers(0, 256, (1200, 1200, 4), dtype=np.uint8)
    data = encoded(Image.fromarray(noise, "RGBA"), "PNG")
    assert len(data) > MAX_IMAGE_BYTES

    prepared = prepare_image(data)

    assert prepared.media_type == "image/png"
    assert len(prepared.data) <= MAX_IMAGE_BYTES
    assert max(prepared.width, prepared.height) < 1200


@pytest.mark.parametrize("data", [b"", b"GIF89a broken", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_bytes_that_are_not_an_image_are_unreadable(data):
    with pytest.raises(UnreadableImage):
        prepare_image(data)


def test_proposals_keep_only_well_formed_tasks():
    found = _proposals({"tasks": [
        {"title": "  Fix   the header ", "details": "It overlaps."},
        {"title": "", "details": "no title"},
        {"details": "no title at all"},
        "not a task",
        {"title": "No details"},
    ]})  # fmt: skip

    assert [(p.title, p.details) for p in found] == [
        ("Fix the header", "It overlaps."), ("No details", "")]


@pytest.mark.parametrize("size", [(10_000, 6_000), (30_000, 30_000)])
def test_an_image_claiming_too_many_pixels_is_refused_before_it_is_decoded(size):
    data = bytearray(encoded(Image.new("RGB", (1, 1)), "PNG"))
    header = b"IHDR" + size[0].to_bytes(4, "big") + size[1].to_bytes(4, "big") + data[24:29]
    data[12:29] = header
    data[29:33] = zlib.crc32(header).to_bytes(4, "big")

    with pytest.raises(UnreadableImage, match="too large"):
        prepare_image(bytes(data))
