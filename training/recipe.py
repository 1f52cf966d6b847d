"""Training recipes: a YAML file plus the command line's overrides, read one way by every training CLI."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def load_recipe(path: str | Path, **overrides: Any) -> dict[str, Any]:
    """The recipe at `path` with every override that is not None applied, so the card records what ran."""
    cfg = yaml.safe_load(Path(path).read_text())
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg
