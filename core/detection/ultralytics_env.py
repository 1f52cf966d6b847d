"""Make Ultralytics work with no network: config dir in the project cache, fonts copied from matplotlib.

Ultralytics downloads Arial.ttf for dataset checks and plots even when offline; we give it matplotlib's
DejaVuSans under the names it looks for. Importing Ultralytics also replaces `PIL.Image.open` with a
wrapper that, on an unidentified image, tries to pip-install `pi-heif`: a network reach-out (and a
ModuleNotFoundError instead of PIL's error) for every bad upload once YOLO is loaded. `import_ultralytics()`
puts Pillow's own function back. Use it instead of a bare `import ultralytics`.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import ModuleType

from core import settings

_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def prepare_ultralytics() -> Path:
    """Set YOLO_OFFLINE / YOLO_CONFIG_DIR and place the fonts; returns the config dir. Idempotent."""
    config_dir = Path(os.environ.get("YOLO_CONFIG_DIR", settings.get().cache_dir / "ultralytics"))
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ["YOLO_OFFLINE"] = "1"
    font_dir = config_dir / "Ultralytics"
    font_dir.mkdir(parents=True, exist_ok=True)
    missing = [n for n in _FONT_NAMES if not (font_dir / n).exists()]
    if missing:
        import matplotlib

        source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        for name in missing:
            shutil.copyfile(source, font_dir / name)
    return config_dir


def import_ultralytics() -> ModuleType:
    """`ultralytics`, imported offline, with Pillow's own `Image.open` restored (also when some other code
    imported Ultralytics first)."""
    from PIL import Image

    prepare_ultralytics()
    import ultralytics
    from ultralytics.utils import patches

    if Image.open is getattr(patches, "image_open", None):
        Image.open = getattr(patches, "_image_open", Image.open)
    return ultralytics
