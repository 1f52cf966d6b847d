"""The fixed inputs of the contract tests (`tests/integration/test_contracts.py`), generated, never stored.

`python -m tests.golden.make_inputs DIR` writes them; `expected_*` beside this file were made by running
the CLI on them before the library moved into packages, so the test proves the move changed no output.
"""
from __future__ import annotations

import io
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _mjpeg_avi(frames: list[np.ndarray], fps: int = 5) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="avi") as out:
        stream = out.add_stream("mjpeg", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuvj420p"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def astronaut_png() -> bytes:
    import skimage.data

    return _png(skimage.data.astronaut())


def write_batch_folder(root: Path) -> Path:
    """A folder a user might point `core batch` at: faces, a faceless photo, a broken file, a video, a subfolder."""
    import skimage.data

    root.mkdir(parents=True, exist_ok=True)
    astro = skimage.data.astronaut()
    (root / "astronaut.png").write_bytes(_png(astro))
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "astronaut_small.png").write_bytes(_png(astro[::2, ::2].copy()))
    (root / "sub" / "mirrored.png").write_bytes(_png(astro[:, ::-1].copy()))
    (root / "coffee.png").write_bytes(_png(skimage.data.coffee()))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (root / "notes.txt").write_text("not an image")
    face = np.ascontiguousarray(astro[:320, 96:416])
    frames = [np.roll(face, shift=4 * i, axis=1) for i in range(10)]
    (root / "clip.avi").write_bytes(_mjpeg_avi(frames))
    return root


if __name__ == "__main__":
    out = Path(sys.argv[1])
    write_batch_folder(out / "folder")
    (out / "astronaut.png").write_bytes(astronaut_png())
