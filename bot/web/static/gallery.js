// Gallery tiles play their clip while the pointer (or keyboard focus) is on them.
"use strict";
for (const tile of document.querySelectorAll(".tile")) {
  const video = tile.querySelector("video.preview");
  if (!video) continue;
  const start = () => { video.play().catch(() => {}); };
  const stop = () => { video.pause(); video.currentTime = 0; };
  tile.addEventListener("mouseenter", start);
  tile.addEventListener("mouseleave", stop);
  tile.addEventListener("focusin", start);
  tile.addEventListener("focusout", stop);
}
