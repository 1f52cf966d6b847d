"""Pack the training data into pieces small enough for the GPU machine's 64 MiB-per-call transfer.

    python scripts/device/pack.py --data ../shared/data --out .gpu [--budget-mib 41]

Writes `.gpu/call1/ ... .gpu/callN/` (git-ignored; the data is research-only and never committed):
FER-2013 as two lossless PNG mosaics with PrivateTest blanked (the test split never leaves this
machine, so nothing trained there can peek at it), FER+ votes, and the face-detection set (train minus
the tune slice, plus val) as a tar cut into chunks. `scripts/device/*.sh` reassemble it there.
"""
from __future__ import annotations

import argparse
import io
import shutil
import tarfile
from pathlib import Path

import cv2
import numpy as np

from training.detector_splits import split_train

MIB = 2 ** 20


def fer_pieces(fer_dir: Path, out: Path) -> list[Path]:
    with np.load(fer_dir / "fer2013.npz") as d:
        images = d["images"].copy()
        usage = d["usage"]
        meta = {k: d[k] for k in ("labels", "usage", "usage_names", "class_names")}
    images[usage == 2] = 0  # PrivateTest stays here
    n, cols = len(images), 200
    rows = -(-n // cols)
    pad = np.zeros((rows * cols, 48, 48), np.uint8)
    pad[:n] = images
    mosaic = pad.reshape(rows, cols, 48, 48).transpose(0, 2, 1, 3).reshape(rows * 48, cols * 48)
    half = (rows // 2) * 48
    pieces = []
    for i, part in enumerate((mosaic[:half], mosaic[half:])):
        ok, buf = cv2.imencode(".png", part, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        assert ok
        path = out / f"fer_mosaic_{i}.png"
        path.write_bytes(buf.tobytes())
        pieces.append(path)
    meta_path = out / "fer_meta.npz"
    np.savez(meta_path, n=np.array(n), cols=np.array(cols), **meta)
    shutil.copyfile(fer_dir / "ferplus.npz", out / "ferplus.npz")
    return pieces + [meta_path, out / "ferplus.npz"]


def faces_tar(faces_dir: Path) -> bytes:
    """Train images minus the tune slice, val, all labels, and the tune slice's names (placeholders there
    keep `split_train` choosing the very same slice)."""
    splits = split_train(faces_dir, 0.1, 0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in splits["train"] + sorted((faces_dir / "images" / "val").glob("*.jpg")):
            tar.add(p, arcname=str(p.relative_to(faces_dir)))
        tar.add(faces_dir / "labels", arcname="labels")
        names = "".join(p.name + "\n" for p in splits["tune"]).encode()
        info = tarfile.TarInfo("tune_names.txt")
        info.size = len(names)
        tar.addfile(info, io.BytesIO(names))
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default=".gpu")
    ap.add_argument("--budget-mib", type=float, default=41.0, help="data per call, beside the working tree")
    args = ap.parse_args()
    data, out = Path(args.data), Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    staging = out / "staging"
    staging.mkdir(parents=True)
    fer = fer_pieces(data / "fer2013", staging)
    tar = faces_tar(data / "faces")
    budget = int(args.budget_mib * MIB)
    # call 1: wheels + FER half 0; call 2: FER half 1 + meta; later calls: the rest of the faces tar.
    calls: list[list[Path]] = [[fer[0]], [fer[1], fer[2], fer[3]]]
    wheels = sum(p.stat().st_size for p in Path(".whl").glob("*.whl"))
    used = [fer[0].stat().st_size + wheels, sum(p.stat().st_size for p in calls[1])]
    offset, chunk_no = 0, 0
    for i in range(100):
        if i >= len(calls):
            calls.append([])
            used.append(0)
        room = budget - used[i]
        if room <= MIB or offset >= len(tar):
            if offset >= len(tar):
                break
            continue
        piece = staging / f"faces.tar.{chunk_no:02d}"
        piece.write_bytes(tar[offset:offset + room])
        calls[i].append(piece)
        used[i] += min(room, len(tar) - offset)
        offset += room
        chunk_no += 1
    for i, files in enumerate(calls, 1):
        folder = out / f"call{i}"
        folder.mkdir()
        for f in files:
            f.rename(folder / f.name)
        print(f"call{i}: {', '.join(f.name for f in files)} ({used[i - 1] / MIB:.1f} MiB)")
    staging.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
