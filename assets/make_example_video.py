"""Make ``assets/cat_pan.mp4``, the example video of the demo: a slow pan and zoom over a photo.

The photo is scikit-image's ``data.chelsea()`` ("Chelsea the cat", public domain, see CREDITS.md);
nothing else goes into the video. Run from the repository root::

    python assets/make_example_video.py            # writes assets/cat_pan.mp4
    python assets/make_example_video.py --gif      # also assets/cat_pan.gif
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def pan_zoom_frames(image: np.ndarray, n: int = 60, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    """``n`` frames ``(size[1], size[0], 3)``: a window of the output's aspect ratio that starts at
    the photo's full height on the left and ends zoomed in (×1.35) on the right, with eased motion."""
    h, w = image.shape[:2]
    aspect = size[0] / size[1]
    pil = Image.fromarray(image)
    frames = []
    for i in range(n):
        t = i / (n - 1)
        t = t * t * (3 - 2 * t)  # smoothstep: starts and ends slowly
        ch = h / (1.0 + 0.35 * t)  # window height: full height → zoomed in
        cw = ch * aspect
        x0 = (w - cw) * (0.1 + 0.8 * t)
        y0 = (h - ch) * 0.4
        box = (x0, y0, x0 + cw, y0 + ch)
        frames.append(np.asarray(pil.resize(size, Image.LANCZOS, box=box)))
    return frames


def main(argv: list[str] | None = None) -> int:
    from skimage import data

    from deepcut.tasks.video import write_video

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(HERE / "cat_pan.mp4"))
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--fps", type=float, default=15.0)
    p.add_argument("--gif", action="store_true", help="also write a GIF next to the MP4")
    args = p.parse_args(argv)
    frames = pan_zoom_frames(data.chelsea(), n=args.frames)
    out = Path(args.out)
    n = write_video(frames, out, fps=args.fps, quality=5)
    print(f"{out}: {n} frames, {out.stat().st_size / 1024:.0f} KiB")
    if args.gif:
        gif = out.with_suffix(".gif")
        write_video(frames, gif, fps=args.fps)
        print(f"{gif}: {gif.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
