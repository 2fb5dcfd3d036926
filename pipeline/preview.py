"""Live previews: the clip as the model currently sees it, a few hundred pixels wide.

After a denoising step the scheduler holds the model's estimate of the finished latents
(for flow matching, ``x0 = x_t - sigma_t * v``). A fixed linear map takes Wan's 16 latent
channels to RGB (no VAE decode), and the frames become a small animated WebP. The step loop
only projects and copies a few hundred kilobytes; encoding runs on a thread of its own, and a
preview that would queue behind one still encoding is skipped. :meth:`LivePreview.close`
waits a few seconds at most for the one in flight, and no preview arrives after it returns.

A preview is shown before the clip is judged, so the caller may give a ``screen`` that looks
at each preview's frames first (the worker's output safety check): once it says no, that
preview and every later one of the run are not made. What a screen decides, and what becomes
of previews shown before, is the caller's business; this module knows nothing of moderation.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

log = logging.getLogger(__name__)

PreviewCallback = Callable[[bytes], None]
"""Receives each preview (an animated WebP), on the preview thread. It must not block: it
returns at once (today's sinks write a file or schedule the preview onto an event loop), since
:meth:`LivePreview.close` waits for a sink in progress to return, beyond its bounded wait."""
PreviewScreen = Callable[[np.ndarray], bool]
"""Whether a preview may be shown, from its clips' frames ((B, F, H, W, 3) uint8: each of a
batch's clips at its own size, before they are tiled); called on the preview thread before
each preview is encoded. False stops the run's previews."""

CLOSE_WAIT_S = 5.0
"""How long :meth:`LivePreview.close` waits for the preview in flight: its screen may be a
third-party classifier, and a hung one must not hold the run (and the generator) with it. The
bound holds only for the screen and the encoder: a sink that is delivering when the wait ends
is waited for until it returns, so a sink must not block (:data:`PreviewCallback`)."""

# Wan 2.1's latent channels to RGB in [-1, 1]: a least-squares fit published with ComfyUI
# (comfy/latent_formats.py, Wan21.latent_rgb_factors and latent_rgb_factors_bias).
WAN21_LATENT_RGB = (
    (-0.1299, -0.1692, 0.2932),
    (0.0671, 0.0406, 0.0442),
    (0.3568, 0.2548, 0.1747),
    (0.0372, 0.2344, 0.1420),
    (0.0313, 0.0189, -0.0328),
    (0.0296, -0.0956, -0.0665),
    (-0.3477, -0.4059, -0.2925),
    (0.0166, 0.1902, 0.1975),
    (-0.0412, 0.0267, -0.1364),
    (-0.1293, 0.0740, 0.1636),
    (0.0680, 0.3019, 0.1128),
    (0.0032, 0.0581, 0.0639),
    (-0.1251, 0.0927, 0.1699),
    (0.0060, -0.0633, 0.0005),
    (0.3477, 0.2275, 0.2950),
    (0.1984, 0.0913, 0.1861),
)
WAN21_LATENT_RGB_BIAS = (-0.1835, -0.0868, -0.3360)
WEBP_QUALITY = 60


@dataclass(frozen=True)
class PreviewOptions:
    """How often previews are made and how big: after every ``every_steps`` steps, at most
    once per ``min_seconds``, ``width`` pixels wide (four drafts share that width)."""

    every_steps: int = 2
    min_seconds: float = 2.0
    width: int = 320


DEFAULT_PREVIEW = PreviewOptions()


def project_to_rgb(latents: torch.Tensor) -> torch.Tensor:
    """(B, 16, F, h, w) Wan latents to (B, F, h, w, 3) uint8 on the same device."""
    factors = torch.tensor(WAN21_LATENT_RGB, device=latents.device, dtype=torch.float32)
    bias = torch.tensor(WAN21_LATENT_RGB_BIAS, device=latents.device, dtype=torch.float32)
    rgb = torch.einsum("bcfhw,cr->bfhwr", latents.float(), factors) + bias
    return ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)


def tile(clips: np.ndarray) -> np.ndarray:
    """(B, F, H, W, 3) clips side by side: one as it is, two in a row, up to four in 2x2."""
    count = len(clips)
    if count == 1:
        return np.asarray(clips[0])
    columns = 2
    rows = -(-count // columns)
    frames, height, width = clips.shape[1:4]
    grid = np.zeros((frames, rows * height, columns * width, 3), dtype=clips.dtype)
    for index, clip in enumerate(clips):
        row, column = divmod(index, columns)
        grid[:, row * height : (row + 1) * height, column * width : (column + 1) * width] = clip
    return grid


def encode_webp(frames: np.ndarray, *, width: int, frame_ms: int) -> bytes:
    """(F, H, W, 3) uint8 frames as an animated WebP ``width`` pixels wide."""
    height = max(1, round(frames.shape[1] * width / frames.shape[2]))
    images = [
        Image.fromarray(frame).resize((width, height), Image.Resampling.BILINEAR)
        for frame in frames
    ]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="WEBP",
        save_all=True,
        append_images=images[1:],
        duration=frame_ms,
        loop=0,
        quality=WEBP_QUALITY,
        method=0,
    )
    return buffer.getvalue()


class LivePreview:
    """Turns the clean-latent estimates of a run into previews for ``sink``.

    ``frame_ms`` is how long each latent frame shows (Wan packs four video frames into one).
    ``screen`` looks at each preview's frames before it is made; once it refuses one, the run
    makes no more. Made per run; after each step the denoising thread asks :meth:`wants`,
    then :meth:`send`.
    """

    def __init__(
        self,
        sink: PreviewCallback,
        options: PreviewOptions,
        *,
        total_steps: int,
        frame_ms: int,
        screen: PreviewScreen | None = None,
    ) -> None:
        self._sink = sink
        self._options = options
        self._screen = screen
        self._refused = threading.Event()
        self._total = total_steps
        self._frame_ms = frame_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preview")
        self._in_flight: Future[None] | None = None
        self._last_at = -float("inf")
        self._closed = threading.Event()
        # Held from the last look at _closed to the sink's return, so close() can promise
        # that nothing is delivered after it.
        self._delivering = threading.Lock()
        self.loop_seconds = 0.0
        """Time spent in the denoising loop on previews (projection and copy)."""
        self.made = 0

    def wants(self, step: int) -> bool:
        """Whether finishing step ``step`` (1-based) should make a preview: every few steps,
        not too often, never the last one (the clip itself follows)."""
        if step % self._options.every_steps or step >= self._total or self.refused:
            return False
        if time.monotonic() - self._last_at < self._options.min_seconds:
            return False
        return self._in_flight is None or self._in_flight.done()

    def send(self, clean: torch.Tensor) -> None:
        """Preview ``clean`` (B, 16, F, h, w), the latest estimate (when :meth:`wants` says).
        Latents of another layout (not Wan's 16 channels) have no preview."""
        if clean.ndim != 5 or clean.shape[1] != len(WAN21_LATENT_RGB):
            return
        started = time.perf_counter()
        frames = project_to_rgb(clean).cpu().numpy()
        self.loop_seconds += time.perf_counter() - started
        self._last_at = time.monotonic()
        self._in_flight = self._executor.submit(self._deliver, frames)

    @property
    def refused(self) -> bool:
        """Whether the screen refused a preview of this run (no more are made)."""
        return self._refused.is_set()

    def _deliver(self, frames: np.ndarray) -> None:
        if self._closed.is_set() or self.refused:
            return
        try:
            # Each clip of a batch is screened on its own: four drafts tiled 2x2 would show the
            # classifiers a quarter of each at once, smaller than any clip is.
            if not self._may_show(frames):
                self._refused.set()
                return
            data = encode_webp(tile(frames), width=self._options.width, frame_ms=self._frame_ms)
            with self._delivering:
                if self._closed.is_set():
                    return
                self._sink(data)
                self.made += 1
        except Exception:
            # A preview is a nicety: losing one must never stop the clip.
            log.exception("making a preview failed")

    def _may_show(self, frames: np.ndarray) -> bool:
        if self._screen is None:
            return True
        try:
            return self._screen(frames)
        except Exception:
            # Whoever asked for a screen wants nothing shown that it could not look at.
            log.exception("screening a preview failed; no more previews of this run")
            return False

    def close(self, *, wait_s: float = CLOSE_WAIT_S) -> None:
        """Wait up to ``wait_s`` seconds for the preview being made, then send no more: one
        still being screened or encoded by then is dropped whenever it ends (a warning says
        so, once).

        A sink already delivering is waited for until it returns (sinks must not block), so
        nothing arrives after close. A screen that truly hangs is not stopped: its pool
        thread stays alive after close, and since Python joins such threads at interpreter
        exit, a hung classifier delays the process's exit. A screen that refuses after close
        still runs what it runs on refusal (the worker's ``on_refused``, which removes the
        preview shown last; an exception there is caught and logged)."""
        in_flight = self._in_flight
        ended = True
        if in_flight is not None:
            try:
                in_flight.result(timeout=wait_s)
            except TimeoutError:
                ended = False
                log.warning(
                    "a live preview was still being screened or encoded %g s after the run "
                    "ended; it is dropped, never shown",
                    wait_s,
                )
        with self._delivering:
            self._closed.set()
        # An idle pool thread exits at once: join it, so a run leaves no thread behind. One
        # stuck in a hung screen is left to end on its own.
        self._executor.shutdown(wait=ended, cancel_futures=True)
