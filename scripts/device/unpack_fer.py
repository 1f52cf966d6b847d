"""On the GPU machine: rebuild fer2013.npz (PrivateTest blank) + ferplus.npz from scripts/device/pack.py's pieces."""
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
meta = dict(np.load(src / "fer_meta.npz"))
parts = [cv2.imread(str(src / f"fer_mosaic_{i}.png"), cv2.IMREAD_GRAYSCALE) for i in (0, 1)]
mosaic = np.vstack(parts)
n, cols = int(meta.pop("n")), int(meta.pop("cols"))
rows = mosaic.shape[0] // 48
images = mosaic.reshape(rows, 48, cols, 48).transpose(0, 2, 1, 3).reshape(rows * cols, 48, 48)[:n]
np.savez(dst / "fer2013.npz", images=images, **meta)
shutil.copyfile(src / "ferplus.npz", dst / "ferplus.npz")
print("fer2013.npz", images.shape, "usage counts", np.bincount(meta["usage"]))
