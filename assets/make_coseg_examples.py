"""Make the co-segmentation tab's example sets in ``assets/coseg/``: several views of the same kind of object.

Only scikit-image's sample photos go in (public domain / CC0, see ``assets/CREDITS.md``):

* ``galaxies_1-3.jpg``: three crops of ``data.hubble_deep_field()`` (NASA, public domain), each with
  a few galaxies on the black sky;
* ``cat_1-3.jpg``: three framings of ``data.chelsea()`` ("Chelsea the cat", CC0): the whole photo, a
  mirrored close-up and a wide crop of the head.

Run from the repository root: ``python assets/make_coseg_examples.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

OUT = Path(__file__).resolve().parent / "coseg"

#: ``(left, top, right, bottom)`` crops of the Hubble deep field (1000 x 872 pixels).
GALAXY_CROPS = ((40, 60, 340, 285), (520, 300, 820, 525), (600, 600, 900, 825))


def galaxy_views() -> list[Image.Image]:
    """Three crops of ``data.hubble_deep_field()``, each with a few galaxies."""
    from skimage import data

    sky = Image.fromarray(np.asarray(data.hubble_deep_field()))
    return [sky.crop(box) for box in GALAXY_CROPS]


def cat_views() -> list[Image.Image]:
    """Three framings of ``data.chelsea()``: whole, mirrored close-up, head and shoulders."""
    from skimage import data

    cat = Image.fromarray(np.asarray(data.chelsea()))
    w, h = cat.size
    close = ImageOps.mirror(cat.crop((int(0.2 * w), int(0.1 * h), int(0.75 * w), int(0.9 * h))))
    wide = cat.crop((0, int(0.15 * h), int(0.8 * w), h))
    return [cat, close, wide]


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, views in (("cat", cat_views()), ("galaxies", galaxy_views())):
        for i, im in enumerate(views, start=1):
            path = OUT / f"{name}_{i}.jpg"
            im.save(path, quality=90)
            print(f"wrote {path} {im.size}")


if __name__ == "__main__":
    main()
