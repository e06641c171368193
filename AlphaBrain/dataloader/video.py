"""mp4 encoding and decoding with PyAV (no torchvision, no ffmpeg binary).

Encoding is lossy (yuv420p halves the chroma resolution), so a round trip gives
approximately, not exactly, the same pixels; store images as PNG in parquet when
exact pixels matter.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from AlphaBrain.utils.errors import DatasetError

# Preference order: h264 is what most players and LeRobot's decoders handle;
# mpeg4 ships with every FFmpeg build, so something always works.
_ENCODERS = ("libx264", "h264", "mpeg4")


@lru_cache(maxsize=1)
def pick_encoder() -> str:
    for name in _ENCODERS:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - PyAV raises several kinds for "not built in"
            continue
    raise RuntimeError(f"PyAV has none of the video encoders {', '.join(_ENCODERS)}")


def codec_label(encoder: str) -> str:
    """The codec name LeRobot records in info.json ("h264", not the encoder "libx264")."""
    return "h264" if encoder in ("libx264", "h264") else encoder


class VideoEncoder:
    """Appends RGB frames to one mp4; episodes can be concatenated into the same file (v3.0)."""

    def __init__(self, path: Path, *, fps: int, height: int, width: int) -> None:
        if height % 2 or width % 2:
            raise ValueError(f"video storage needs an even image height and width (yuv420p), got {height}x{width}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.encoder = pick_encoder()
        self._container = av.open(str(path), mode="w")
        self._stream = self._container.add_stream(self.encoder, rate=fps)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        # One encoder thread: multi-threaded libx264 here occasionally produced different
        # bytes for the same frames (measured), and a dataset must be reproducible from
        # its seed. Small frames lose nothing by it; encoding was not slower (2 cores).
        self._stream.codec_context.thread_count = 1
        if self.encoder == "libx264":
            # No B-frames keeps pts == decode order; a keyframe every second keeps
            # seeking into a long concatenated file cheap. A constant quantizer (12: visually
            # lossless) with the adaptive analyses off (macroblock tree, adaptive quantization,
            # psychovisual tuning, lookahead): with crf 18 and those on, the same frames now and
            # then encoded to different bytes once the process had decoded video (measured: 22
            # of 120 datasets written twice differed; 0 of 200 with these settings).
            self._stream.options = {"qp": "12", "preset": "veryfast", "bf": "0", "g": str(max(1, fps)),
                                    "x264-params": "mbtree=0:aq-mode=0:psy=0:rc-lookahead=0"}
        else:
            self._stream.options = {"g": str(max(1, fps))}
            self._stream.bit_rate = max(200_000, 8 * width * height * fps // 4)
        self.frames_written = 0
        self.bytes_written = 0

    def write(self, frames: np.ndarray) -> None:
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts = self.frames_written
            self.frames_written += 1
            self._mux(self._stream.encode(vf))

    def _mux(self, packets) -> None:
        for packet in packets:
            self.bytes_written += packet.size
            self._container.mux(packet)

    def close(self) -> None:
        if self._container is not None:
            self._mux(self._stream.encode())
            self._container.close()
            self._container = None


def _decode_from(path: Path, timestamp: float, num_frames: int, fps: float) -> list[np.ndarray]:
    """Up to `num_frames` frames whose presentation time is >= `timestamp` (within half a frame)."""
    if not path.is_file():
        raise DatasetError(f"missing video file {path}: the dataset is incomplete; re-download it")
    tol = 0.5 / fps
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            tb = stream.time_base
            # Seek to the keyframe before `timestamp` and decode forward. Should a
            # seek land past the target (some muxers' edit lists), decode from the start.
            for seek_to in ((timestamp, 0.0) if timestamp > tol else (0.0,)):
                container.seek(int(seek_to / tb), stream=stream, backward=True, any_frame=False)
                frames: list[np.ndarray] = []
                for frame in container.decode(stream):
                    if frame.pts is None:
                        continue
                    t = float(frame.pts * tb)
                    if t < timestamp - tol:
                        continue
                    if not frames and t > timestamp + tol:
                        break  # overshot: retry from the start
                    frames.append(frame.to_ndarray(format="rgb24"))
                    if len(frames) == num_frames:
                        return frames
                if frames:
                    return frames
    except (av.FFmpegError, OSError, IndexError) as e:
        raise DatasetError(f"cannot decode video file {path}: {e}") from None
    return []


def decode_segment(path: Path, from_timestamp: float, num_frames: int, fps: float) -> np.ndarray:
    """The `num_frames` frames starting at `from_timestamp` seconds, as uint8 [T, H, W, 3].

    Frames are matched by presentation time (as LeRobot does), so a segment in
    the middle of a concatenated v3.0 file is found by seeking to the keyframe
    before it and decoding forward.
    """
    frames = _decode_from(path, from_timestamp, num_frames, fps)
    # Some encoders drop the last frame of a file; one missing frame is tolerated
    # (the last one is repeated), more means the metadata and video disagree.
    if len(frames) == num_frames - 1 and frames:
        frames.append(frames[-1])
    if len(frames) != num_frames:
        raise DatasetError(
            f"video file {path} has {len(frames)} frames from t={from_timestamp:.3f}s, "
            f"expected {num_frames}: the video and the episode metadata disagree"
        )
    return np.stack(frames)


def decode_frame(path: Path, timestamp: float, fps: float) -> np.ndarray:
    """The single frame shown at `timestamp` seconds: costs at most one GOP of decoding."""
    frames = _decode_from(path, timestamp, 1, fps)
    if not frames:
        raise DatasetError(f"video file {path} has no frame at t={timestamp:.3f}s: the video is shorter than "
                           "the episode metadata says")
    return frames[0]
