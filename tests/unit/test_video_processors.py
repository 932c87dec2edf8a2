"""Video processor plugins: edges, grayscale, mirror, text overlay, picture-in-picture, sprite."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

import av
import numpy as np
import numpy.typing as npt
import pytest

from runner.frames import (
    EndFrame,
    Frame,
    FrameDirection,
    InputImageRawFrame,
    OutputImageRawFrame,
    StartFrame,
    TextFrame,
)
from runner.plugins import PluginRegistry
from runner.processors.base import FrameProcessor
from runner.processors.queue import Overflow
from runner.processors.video import EdgeDetect, Grayscale, Mirror, PictureInPicture, Sprite, TextOverlay
from runner.processors.video._font import GLYPHS, render_text
from runner.processors.video._image import resize_nearest, to_rgb
from runner.processors.video.edges import SobelScratch, sobel_edges
from runner.testing import assert_frames, run_processor

U8 = npt.NDArray[np.uint8]
W, H = 64, 48


def square(width: int = W, height: int = H, box: tuple[int, int, int, int] = (16, 12, 48, 36)) -> U8:
    """A white square on black: box = (x0, y0, x1, y1)."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = 255
    return image


def solid(color: tuple[int, int, int], width: int = W, height: int = H) -> U8:
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = color
    return image


def camera(image: U8, fmt: str = "RGB") -> InputImageRawFrame:
    return InputImageRawFrame(image=image.tobytes(), size=(image.shape[1], image.shape[0]), format=fmt)


def output(image: U8) -> OutputImageRawFrame:
    return OutputImageRawFrame(image=image.tobytes(), size=(image.shape[1], image.shape[0]), format="RGB")


def pixels(frame: Frame) -> U8:
    assert isinstance(frame, OutputImageRawFrame)
    assert frame.format == "RGB"
    return np.array(to_rgb(frame))


def test_entry_points_resolve() -> None:
    registry = PluginRegistry.discover()
    expected = {
        "video.edges": EdgeDetect,
        "video.grayscale": Grayscale,
        "video.mirror": Mirror,
        "video.overlay_text": TextOverlay,
        "video.pip": PictureInPicture,
        "video.sprite": Sprite,
    }
    for name, cls in expected.items():
        assert registry.processor(name) is cls


def test_font_covers_printable_ascii() -> None:
    assert GLYPHS.shape == (95, 7, 5)
    assert not GLYPHS[0].any()  # space
    assert all(GLYPHS[i].any() for i in range(1, 95))
    assert render_text("AB\nC", scale=2).shape == (30, 22)


def test_resize_nearest_slices_and_indexes() -> None:
    image = np.arange(8 * 6, dtype=np.uint8).reshape(6, 8)
    assert np.array_equal(resize_nearest(image, (4, 3)), image[::2, ::2])
    assert resize_nearest(image, (5, 5)).shape == (5, 5)


# ---------------------------------------------------------------- transforms


async def test_edges_on_square_border_only() -> None:
    run = await run_processor(EdgeDetect(), [camera(square()), TextFrame("t")])
    assert len(run.down) == 2 and len(run.of_type(TextFrame)) == 1  # text may overtake the queued picture
    out = pixels(run.of_type(OutputImageRawFrame)[0])
    edge = out[..., 0] > 0
    assert (out[edge] == 255).all()
    # the border of the square (inside and outside its outline) is found ...
    assert edge[24, 15] and edge[24, 16] and edge[11, 30] and edge[35, 30] and edge[24, 47]
    # ... and nothing in the flat areas: deep inside the square or out in the black
    assert not edge[18:30, 22:42].any()
    assert not edge[:9].any() and not edge[40:].any() and not edge[:, :13].any()


async def test_edges_overlay_keeps_picture_and_threshold_matters() -> None:
    image = square()
    image[..., 2] = 40  # a flat blue tint stays as it is
    run = await run_processor(EdgeDetect(EdgeDetect.Params(mode="overlay", color="red")), [camera(image)])
    out = pixels(run.of_type(OutputImageRawFrame)[0])
    assert np.array_equal(out[20, 25], image[20, 25]) and np.array_equal(out[2, 2], image[2, 2])
    assert tuple(out[24, 16]) == (255, 0, 0)
    faint = square()
    faint[faint == 255] = 20  # a weak step: magnitude 80 at most
    strict = EdgeDetect(EdgeDetect.Params(threshold=100)).transform(camera(faint))
    assert not pixels(strict).any()


def yuv_camera(image: U8) -> InputImageRawFrame:
    yuv = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p").to_ndarray()
    return InputImageRawFrame(image=yuv.tobytes(), size=(image.shape[1], image.shape[0]), format="yuv420p")


def yuv_to_rgb(frame: Frame) -> U8:
    assert isinstance(frame, OutputImageRawFrame) and frame.format == "yuv420p"
    width, height = frame.size
    planes = np.frombuffer(frame.image, np.uint8).reshape(height * 3 // 2, width)
    return np.asarray(av.VideoFrame.from_ndarray(planes, format="yuv420p").to_ndarray(format="rgb24"), np.uint8)


@pytest.mark.parametrize(
    "params",
    [{}, {"color": "red"}, {"mode": "overlay"}, {"mode": "overlay", "color": "white"}],
)
def test_edges_on_yuv420p_stay_yuv420p_and_match_the_rgb_path(params: dict[str, str]) -> None:
    image = np.repeat(np.repeat(np.random.default_rng(4).integers(0, 256, (12, 16, 3), np.uint8), 4, 0), 4, 1)
    planar = yuv_camera(image)
    rgb = camera(np.array(to_rgb(InputImageRawFrame(image=planar.image, size=(W, H), format="yuv420p"))))
    edges = EdgeDetect(EdgeDetect.Params.model_validate({"threshold": 120, **params}))
    got = yuv_to_rgb(edges.transform(planar))
    via_yuv = av.VideoFrame.from_ndarray(pixels(edges.transform(rgb)), format="rgb24").reformat(format="yuv420p")
    want = via_yuv.to_ndarray(format="rgb24")  # the RGB path, through the same conversion
    close = np.abs(got.astype(np.int16) - want).max(axis=2) <= 24
    assert close.mean() > 0.97  # only pixels right at the threshold (rounding) may differ


def test_edges_on_yuv420p_square() -> None:
    out = yuv_to_rgb(EdgeDetect().transform(yuv_camera(square())))
    edge = out[..., 0] > 128
    assert edge[24, 15] and edge[24, 16] and edge[11, 30] and edge[35, 30] and edge[24, 47]
    assert not edge[18:30, 22:42].any() and not edge[:9].any() and not edge[:, :13].any()
    assert (out[edge] > 230).all() and (out[~edge] < 25).all()
    odd = InputImageRawFrame(image=bytes(range(7 * 5 + 2 * 4 * 3)), size=(7, 5), format="yuv420p")
    for mode in ("edges", "overlay"):  # odd sizes: the last chroma row/column covers half blocks
        small = EdgeDetect(EdgeDetect.Params(color="red", mode=mode)).transform(odd)
        assert small.size == (7, 5) and small.format == "yuv420p" and len(small.image) == len(odd.image)


def test_sobel_scratch_is_reused_and_matches_sobel_edges() -> None:
    scratch = SobelScratch(H, W)
    for seed in (1, 2):
        luma = np.random.default_rng(seed).integers(0, 256, (H, W), dtype=np.uint8)
        assert np.array_equal(scratch.edges(luma, 200.0), sobel_edges(luma, 200.0))
    assert not scratch.edges(np.zeros((H, W), np.uint8), 1.0).any()
    with pytest.raises(ValueError, match="scratch is for"):
        scratch.edges(np.zeros((2, 2), np.uint8), 1.0)


async def test_grayscale_gives_equal_channels() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    run = await run_processor(Grayscale(), [camera(image), output(solid((255, 0, 0)))])
    for frame in run.down:
        out = pixels(frame)
        assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert abs(int(pixels(run.down[1])[0, 0, 0]) - 77) <= 1  # BT.601 weight of red


@pytest.mark.parametrize(
    ("direction", "flip"),
    [("horizontal", lambda a: a[:, ::-1]), ("vertical", lambda a: a[::-1]), ("both", lambda a: a[::-1, ::-1])],
)
async def test_mirror_flips(direction: str, flip: object) -> None:
    image = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    run = await run_processor(Mirror(Mirror.Params.model_validate({"direction": direction})), [camera(image)])
    assert callable(flip)
    assert np.array_equal(pixels(run.down[0]), flip(image))


async def test_input_formats_are_converted_or_rejected() -> None:
    image = square()
    bgr = camera(np.ascontiguousarray(image[..., ::-1]), "BGR")
    gray = camera(np.ascontiguousarray(image[..., 0]), "gray")
    rgba = np.concatenate([image, np.full((H, W, 1), 7, np.uint8)], axis=2)
    for frame in (bgr, gray, camera(rgba, "RGBA")):
        flipped = Mirror(Mirror.Params(direction="horizontal")).transform(frame)
        assert np.array_equal(pixels(flipped), image[:, ::-1])
    yuv = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p").to_ndarray()
    planar = InputImageRawFrame(image=yuv.tobytes(), size=(W, H), format="yuv420p")
    out = pixels(Grayscale().transform(planar))
    assert out[24, 30, 0] > 230 and out[2, 2, 0] < 25
    out = pixels(Mirror(Mirror.Params(direction="vertical")).transform(planar))  # full colour conversion
    assert (out[24, 30] > 230).all() and (out[2, 2] < 25).all() and (out[40, 30] < 25).all()
    run = await run_processor(Mirror(), [InputImageRawFrame(image=b"\0" * 12, size=(2, 2), format="nv12")])
    assert run.error is not None and "unsupported image format 'nv12'" in run.error.error
    run = await run_processor(Mirror(), [InputImageRawFrame(image=b"\0" * 5, size=(2, 2))])
    assert run.error is not None and "needs 12 bytes, got 5" in run.error.error


async def test_other_sources_and_directions_pass_through() -> None:
    screen = InputImageRawFrame(image=square().tobytes(), size=(W, H), source="screenVideo")
    up = output(square())
    run = await run_processor(Mirror(), [screen, (up, FrameDirection.UPSTREAM)])
    assert run.down == [screen]
    assert run.up[-1] is up
    run = await run_processor(Mirror(Mirror.Params(source="any")), [screen])
    assert isinstance(run.down[0], OutputImageRawFrame)


async def test_overlay_text_changes_pixels_only_in_its_box() -> None:
    image = np.random.default_rng(3).integers(0, 256, (H * 2, W * 2, 3), dtype=np.uint8)
    params = TextOverlay.Params(text="Hi {frame}", position="bottom-right", scale=2, padding=3, margin=4)
    overlay = TextOverlay(params)
    run = await run_processor(overlay, [camera(image), camera(image)])
    first, second = (pixels(frame) for frame in run.down)
    mask_w, mask_h = render_text("Hi 0", 2).shape[::-1]
    box_w, box_h = mask_w + 6, mask_h + 6
    x0, y0 = W * 2 - 4 - box_w, H * 2 - 4 - box_h
    changed = (first != image).any(axis=2)
    assert changed.any()
    ys, xs = np.nonzero(changed)
    assert ys.min() >= y0 and ys.max() < y0 + box_h and xs.min() >= x0 and xs.max() < x0 + box_w
    inside = first[y0 : y0 + box_h, x0 : x0 + box_w]
    assert set(map(tuple, inside.reshape(-1, 3))) == {(0, 0, 0), (255, 255, 255)}  # black box, white text
    assert not np.array_equal(first, second)  # {frame} went from 0 to 1


async def test_overlay_text_transparent_and_placeholders() -> None:
    image = solid((10, 20, 30))
    overlay = TextOverlay(
        TextOverlay.Params.model_validate({"text": "{time} {date} {fps:.1f}", "background": None, "color": [1, 2, 3]})
    )
    overlay.wallclock = lambda: 0.0
    assert overlay.current_text().endswith(" 0.0") and overlay.current_text().count(":") == 2
    out = pixels(overlay.transform(camera(image)))
    values = set(map(tuple, out.reshape(-1, 3)))
    assert values == {(10, 20, 30), (1, 2, 3)}
    with pytest.raises(ValueError, match="unknown placeholder"):
        TextOverlay.Params(text="{nope}")
    assert TextOverlay(TextOverlay.Params(text="{{literal}}")).current_text() == "{literal}"


async def test_pip_insets_remembered_output_in_corner() -> None:
    red, blue = solid((255, 0, 0), 80, 60), solid((0, 0, 255), 80, 60)
    pip = PictureInPicture(PictureInPicture.Params(scale=0.25, corner="top-left", border=1, margin=2))
    run = await run_processor(pip, [output(red), output(blue), output(blue)])
    first, second, third = (pixels(frame) for frame in run.down)
    assert np.array_equal(first, red)  # nothing remembered yet: unchanged
    x, y, w, h = pip.inset_box(80, 60)
    assert (x, y, w, h) == (3, 3, 20, 15)
    assert (second[y : y + h, x : x + w] == (255, 0, 0)).all()  # the previous output, scaled down
    assert (second[y - 1, x : x + w] == 255).all()  # white border
    assert (second[30:, 30:] == (0, 0, 255)).all()  # the rest is the current frame
    assert (third[y : y + h, x : x + w] == (0, 0, 255)).all()  # remembered before its inset


async def test_pip_corners_and_input_frames() -> None:
    pip = PictureInPicture(PictureInPicture.Params(corner="bottom-right", border=0, margin=0, scale=0.5))
    marked = solid((0, 0, 0), 40, 40)
    marked[:20, :20] = (0, 255, 0)  # green top-left quarter
    run = await run_processor(pip, [camera(marked), camera(solid((9, 9, 9), 40, 40))])
    out = pixels(run.down[1])
    assert (out[20:30, 20:30] == (0, 255, 0)).all() and (out[30:, 30:] == 0).all()
    assert (out[:20, :] == 9).all()


# ---------------------------------------------------------------- drop_oldest


class SlowMirror(Mirror):
    """A mirror that takes its time, with a small queue that drops the oldest frame."""

    queue_size: ClassVar[int] = 2
    queue_overflow: ClassVar[Overflow] = "drop_oldest"

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputImageRawFrame):
            await asyncio.sleep(0.002)
        await super().process_frame(frame, direction)


async def test_slow_transform_drops_old_frames_instead_of_queueing() -> None:
    frames: list[Frame] = []
    for i in range(50):
        frames += [camera(solid((i, i, i), 8, 8)), TextFrame(str(i))]
    run = await run_processor(SlowMirror(), frames)
    out = run.of_type(OutputImageRawFrame)
    assert 0 < len(out) < 50
    assert pixels(out[-1])[0, 0, 0] == 49  # the newest frame made it
    assert [f.text for f in run.of_type(TextFrame)] == [str(i) for i in range(50)]  # other data is never dropped
    assert EdgeDetect.queue_overflow == "drop_oldest" and EdgeDetect.queue_size > 0


# ---------------------------------------------------------------- sprite


class FakeClock:
    """Monotonic time that only moves when the sprite sleeps; stops the sprite after ``limit`` sleeps."""

    def __init__(self, limit: int) -> None:
        self.now = 100.0
        self.sleeps = 0
        self.limit = limit
        self.reached = asyncio.Event()
        self.resume = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, secs: float) -> None:
        self.now += secs
        self.sleeps += 1
        if self.sleeps >= self.limit:
            self.reached.set()
            await self.resume.wait()
            self.resume.clear()
        await asyncio.sleep(0)


class Sink(FrameProcessor):
    def __init__(self) -> None:
        super().__init__(name="sink")
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        self.frames.append(frame)


def write_png(path: Path, image: U8) -> None:
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "rgb24"
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def sprite_images(frames: list[Frame]) -> list[OutputImageRawFrame]:
    return [frame for frame in frames if isinstance(frame, OutputImageRawFrame)]


async def test_sprite_paces_frames_and_yields_to_real_output(tmp_path: Path) -> None:
    for index, shade in enumerate((50, 150)):
        write_png(tmp_path / f"frame{index}.png", solid((shade, shade, shade), 16, 12))
    sprite = Sprite(Sprite.Params(path=tmp_path, fps=10, idle_secs=0.5, size=(8, 6)))
    clock = FakeClock(limit=20)
    sprite.clock, sprite.sleep = clock, clock.sleep
    sink = Sink()
    sprite.link(sink)
    await sprite.queue_frame(StartFrame())
    await asyncio.wait_for(clock.reached.wait(), 5)
    shown = sprite_images(sink.frames)
    assert len(shown) == 20  # one picture per 1/fps tick of the clock
    assert clock.now == pytest.approx(100.0 + 20 / 10)
    assert shown[0].size == (8, 6) and len(shown[0].image) == 8 * 6 * 3
    assert [pixels(f)[0, 0, 0] for f in shown[:4]] == [50, 150, 50, 150]  # the folder, looped

    real = output(solid((1, 2, 3), 8, 6))
    await sprite.queue_frame(real)  # real video: the sprite goes quiet ...
    clock.limit += 3
    clock.resume.set()
    await asyncio.wait_for(clock.reached.wait(), 5)
    clock.reached.clear()
    after = sprite_images(sink.frames)
    real_at = next(i for i, f in enumerate(after) if f is real)
    quiet_since = clock.now
    assert len(after) - real_at - 1 <= 1  # at most the tick already under way
    await sprite.queue_frame(real)
    clock.limit += 2
    clock.resume.set()
    await asyncio.wait_for(clock.reached.wait(), 5)
    assert clock.now >= quiet_since  # time moved on without pictures
    await sprite.queue_frame(EndFrame())
    await sprite.cleanup()
    assert sink.frames[-1].name == "EndFrame"


async def test_sprite_resumes_after_idle_secs(tmp_path: Path) -> None:
    write_png(tmp_path / "still.png", solid((200, 100, 0), 10, 10))
    sprite = Sprite(Sprite.Params(path=tmp_path / "still.png", fps=5, idle_secs=1.0, loop=False))
    clock = FakeClock(limit=1000)
    sprite.clock = clock
    ticks: list[float] = []

    async def tick(secs: float) -> None:
        ticks.append(secs)
        clock.now += secs
        if sprite.emitted >= 8:
            await asyncio.Event().wait()  # park the task; cleanup cancels it
        await asyncio.sleep(0)

    sprite.sleep = tick
    sink = Sink()
    sprite.link(sink)
    sprite._last_upstream = clock.now  # as if real video had just passed
    await sprite.queue_frame(StartFrame())
    for _ in range(100):
        if sprite.emitted >= 8:
            break
        await asyncio.sleep(0)
    assert ticks[0] == pytest.approx(1.0)  # first waited out idle_secs, then paced at 5 fps
    assert ticks[1:8] == [pytest.approx(0.2)] * 7
    assert pixels(sprite_images(sink.frames)[0])[0, 0].tolist() == [200, 100, 0]
    await sprite.cleanup()


async def test_sprite_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    run = await run_processor(Sprite(Sprite.Params(path=missing)), [TextFrame("x")])
    assert run.error is not None
    assert "sprite image not found" in run.error.error and str(missing) in run.error.error
    (tmp_path / "bad.png").write_bytes(b"not a png")
    run = await run_processor(Sprite(Sprite.Params(path=tmp_path / "bad.png")))
    assert run.error is not None and "cannot decode image" in run.error.error


async def test_chain_camera_to_video_out() -> None:
    from runner.pipeline import Pipeline

    chain = Pipeline(
        [Mirror(), EdgeDetect(), TextOverlay(TextOverlay.Params(text="{frame}")), PictureInPicture()], name="video"
    )
    run = await run_processor(chain, [camera(square()), camera(square()), TextFrame("t")])
    assert_frames(run.of_type(OutputImageRawFrame), [OutputImageRawFrame, OutputImageRawFrame])
    assert len(run.down) == 3 and run.error is None
