"""Links from Discord to the web gallery: a clip's embed links to its page when users can
reach it (``REELBOT_PUBLIC_URL`` is set) and the gallery shows the clip."""

from __future__ import annotations

from jobqueue.gallery import Gallery


def clip_page_path(job_id: int) -> str:
    """A clip's page, below the site's address: its stable link."""
    return f"/clips/{job_id}"


async def clip_page_url(public_url: str | None, gallery: Gallery, job_id: int) -> str | None:
    """The address of the clip's page, or None when there is none to give."""
    if not public_url:
        return None
    found = await gallery.lookup(job_id)
    return f"{public_url}{clip_page_path(job_id)}" if found.job is not None else None
