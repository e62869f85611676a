"""Replace a folder by a fully written one, so readers never see a half-written folder.

Checkpoints and built assets are written to a temporary sibling first and swapped in
here: the old folder is moved to ``<name>.old``, the new one renamed into place, then
the old one deleted. A crash between the two renames leaves ``<name>.old`` intact, which
is why checkpoint loaders also look there (`rlhf_gym.agents.common.latest_checkpoint`).
"""

from __future__ import annotations

import shutil
from pathlib import Path


def swap_in(new: Path, final: Path) -> None:
    """Move the complete folder ``new`` to ``final``, replacing what was there.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "new").mkdir(); _ = (root / "new" / "x").write_text("2")
        >>> (root / "out").mkdir(); _ = (root / "out" / "x").write_text("1")
        >>> swap_in(root / "new", root / "out")
        >>> (root / "out" / "x").read_text(), sorted(p.name for p in root.iterdir())
        ('2', ['out'])
    """
    old = final.with_name(final.name + ".old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)
