"""What travels through the broker, as JSON inside SAQ jobs.

Out, in the SAQ job's kwargs: an :class:`Assignment` (the job as the bot's database holds it,
the attempt, the model the bot chose, the scene written while it waited, the server's
blocklist and safety policy). The start and end images of /animate, the parent clip of
Extend or the draft latents Render and Vary start from wait beside it in an *inputs record*
(a SAQ job that is never run, finished at once with the bytes as its result), so the
assignment the bot reads while it watches stays small. Back: the running job's ``meta``
carries its stage, step, scene (:func:`~jobqueue.models.progress_values`) and latest live
preview (:func:`preview_meta`), and its result is an :class:`Outcome`: the clip and poster
bytes (a grid's drafts beside them) with what the pipeline resolved and what the safety check
found, or a sentence why not.

Bytes travel base64-encoded. Either direction refuses more than the configured cap with a
sentence (:class:`TooLarge`). Every reader ignores fields it does not know, so a bot and its
workers may run neighbouring versions.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from jobqueue.clipfiles import files_beside_grid
from jobqueue.clipjob import JobInputs
from jobqueue.models import Job, JobKind, JobRequest, JobStatus, Stage
from jobqueue.moderation import BlockHit, BlockRule
from jobqueue.safety import IfUnchecked, OutputVerdict, SafetyMode, SafetyPolicy, Verdict
from pipeline.clip import ChosenPrompt, MadeClip
from pipeline.drafts import latents_beside
from pipeline.encode import EncodedClip, poster_beside
from pipeline.errors import ClipFailed
from pipeline.request import ResolvedRequest
from pipeline.rewrite import RewriteResult

MAKE_CLIP = "make_clip"
"""The name of the one function a remote worker runs."""

OutcomeKind = Literal["done", "failed", "released"]
_PICTURES = ("start_image", "end_image")
"""A resolved request's pictures, which never travel back."""
MAX_PREVIEW_BYTES = 2**20
"""A live preview larger than this stays on the worker (previews are a few hundred KB)."""


class TooLarge(ClipFailed):
    """Bytes over the broker's cap: the job fails with a sentence saying so."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(
            f"The {what} is {_megabytes(size)}, more than the {_megabytes(limit)} this server"
            " sends between its machines; ask the server's owner to raise"
            " REELBOT_BROKER_MAX_BYTES.",
            f"{what}: {size} bytes over the broker cap of {limit}",
        )


def encode_bytes(data: bytes, what: str, *, limit: int) -> str:
    if len(data) > limit:
        raise TooLarge(what, len(data), limit)
    return base64.b64encode(data).decode("ascii")


def decode_bytes(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


# --- out: the job ---


@dataclass(frozen=True)
class Inputs:
    """The files a job starts from, as bytes: the start image (and the end image), the clip
    it extends, or the latents of the draft a Render or Vary starts from."""

    start_image: bytes | None = None
    extend: bytes | None = None
    draft_latents: bytes | None = None
    end_image: bytes | None = None

    def to_result(self, *, limit: int) -> dict[str, str]:
        found = {
            "start_image": self.start_image,
            "extend": self.extend,
            "draft_latents": self.draft_latents,
            "end_image": self.end_image,
        }
        what = {
            "start_image": "start picture",
            "extend": "clip to extend",
            "draft_latents": "draft to start from",
            "end_image": "end picture",
        }
        return {
            name: encode_bytes(data, what[name], limit=limit)
            for name, data in found.items()
            if data is not None
        }

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Inputs:
        return cls(
            start_image=_maybe_bytes(result.get("start_image")),
            extend=_maybe_bytes(result.get("extend")),
            draft_latents=_maybe_bytes(result.get("draft_latents")),
            end_image=_maybe_bytes(result.get("end_image")),
        )

    def write(self, folder: Path) -> JobInputs:
        """Save the files in ``folder``: the job's inputs on this host."""
        folder.mkdir(parents=True, exist_ok=True)
        start = extend = draft = end = None
        if self.start_image is not None:
            start = folder / "start.png"
            start.write_bytes(self.start_image)
        if self.end_image is not None:
            end = folder / "end.png"
            end.write_bytes(self.end_image)
        if self.extend is not None:
            extend = folder / "parent.mp4"
            extend.write_bytes(self.extend)
        if self.draft_latents is not None:
            # The pipeline reads a draft's latents beside it; the draft's video is not needed.
            draft = folder / "draft.mp4"
            latents_beside(draft).write_bytes(self.draft_latents)
        return JobInputs(start_image=start, extend=extend, draft=draft, end_image=end)


@dataclass(frozen=True)
class Assignment:
    """One attempt of one job, as a remote worker receives it."""

    job: Job
    attempt: int
    model: str
    max_bytes: int
    """The clip's byte budget (the bot's upload limit): encodes are redone smaller to fit."""
    scene: RewriteResult | None = None
    rules: tuple[BlockRule, ...] = ()
    safety: SafetyPolicy = field(default_factory=SafetyPolicy)
    inputs_key: str | None = None

    def to_kwargs(self) -> dict[str, Any]:
        return {
            "job": job_to_wire(self.job),
            "attempt": self.attempt,
            "model": self.model,
            "max_bytes": self.max_bytes,
            "scene": dataclasses.asdict(self.scene) if self.scene is not None else None,
            "rules": [dict(vars(rule)) for rule in self.rules],
            "safety": _policy_to_wire(self.safety),
            "inputs_key": self.inputs_key,
        }

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> Assignment:
        scene = kwargs.get("scene")
        return cls(
            job=job_from_wire(kwargs["job"]),
            attempt=int(kwargs["attempt"]),
            model=str(kwargs["model"]),
            max_bytes=int(kwargs["max_bytes"]),
            scene=_known(RewriteResult, scene) if scene else None,
            rules=tuple(_known(BlockRule, rule) for rule in kwargs.get("rules") or ()),
            safety=_policy_from_wire(kwargs.get("safety") or {}),
            inputs_key=kwargs.get("inputs_key"),
        )


def job_to_wire(job: Job) -> dict[str, Any]:
    # A shallow copy: its values are plain, and asdict's deep copy cost a millisecond a job.
    return {**vars(job), "request": dict(vars(job.request))}


def job_from_wire(data: Mapping[str, Any]) -> Job:
    values = {name: value for name, value in data.items() if name in _field_names(Job)}
    values["kind"] = JobKind(values["kind"])
    values["status"] = JobStatus(values["status"])
    values["stage"] = Stage(values["stage"])
    values["request"] = _known(JobRequest, data["request"])
    return Job(**values)


def _policy_to_wire(policy: SafetyPolicy) -> dict[str, Any]:
    return dataclasses.asdict(policy)


def _policy_from_wire(data: Mapping[str, Any]) -> SafetyPolicy:
    defaults = SafetyPolicy()
    return SafetyPolicy(
        mode=SafetyMode(data.get("mode", defaults.mode)),
        thresholds={
            str(name): float(value) for name, value in (data.get("thresholds") or {}).items()
        },
        strikes=bool(data.get("strikes", defaults.strikes)),
        if_unchecked=IfUnchecked(data.get("if_unchecked", defaults.if_unchecked)),
    )


# --- back: progress and the outcome ---


def preview_meta(data: bytes, number: int) -> dict[str, Any]:
    """The running job's ``meta`` fields for its ``number``-th live preview."""
    return {"preview": base64.b64encode(data).decode("ascii"), "preview_number": number}


PREVIEWS_REFUSED_META: Mapping[str, Any] = MappingProxyType(
    {"preview": None, "previews_refused": True}
)
"""The running job's ``meta`` fields once the safety check refused one of its previews: the
bot removes the one it shows and takes no more."""


def previews_refused(meta: Mapping[str, Any]) -> bool:
    """Whether the running job's ``meta`` says the safety check refused one of its previews
    (:data:`PREVIEWS_REFUSED_META`)."""
    return meta.get("previews_refused") is True


def preview_of(meta: Mapping[str, Any]) -> tuple[int, bytes] | None:
    """The number and bytes of the latest live preview in ``meta``, if there is one."""
    number, text = meta.get("preview_number"), meta.get("preview")
    if not isinstance(number, int) or not isinstance(text, str):
        return None
    return number, decode_bytes(text)


@dataclass(frozen=True)
class Outcome:
    """What a remote worker sends back for one attempt."""

    kind: OutcomeKind
    sentence: str = ""
    detail: str = ""
    clip: bytes = b""
    poster: bytes = b""
    encoded: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)
    prompt: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    verdict: OutputVerdict | None = None
    rewrite_blocks: tuple[BlockHit, ...] = ()
    beside: dict[str, bytes] = field(default_factory=dict)
    """A grid's drafts (videos, posters, latents), by what follows the clip's name."""

    @classmethod
    def done(
        cls,
        made: MadeClip,
        verdict: OutputVerdict | None,
        rewrite_blocks: tuple[BlockHit, ...],
    ) -> Outcome:
        encoded = dataclasses.asdict(made.clip)
        for name in ("path", "poster_path"):
            encoded.pop(name)
        # The pictures stay behind: the bot has them, and JSON has no place for them.
        without_pictures = dataclasses.replace(made.request, start_image=None, end_image=None)
        request = dataclasses.asdict(without_pictures)
        for name in _PICTURES:
            request.pop(name)
        beside = {
            name: path.read_bytes()
            for name, path in _names_beside(made.clip.path).items()
            if path.exists()
        }
        return cls(
            kind="done",
            clip=made.clip.path.read_bytes(),
            poster=made.clip.poster_path.read_bytes(),
            encoded=encoded,
            request=request,
            prompt={
                "text": made.prompt.text,
                "rewritten": made.prompt.rewritten,
                "note": made.prompt.note,
            },
            timings=dict(made.timings),
            verdict=verdict,
            rewrite_blocks=rewrite_blocks,
            beside=beside,
        )

    def to_result(self, *, limit: int) -> dict[str, Any]:
        """As the SAQ job's result; raises TooLarge when the files pass ``limit``."""
        result: dict[str, Any] = {"outcome": self.kind, "sentence": self.sentence}
        result["detail"] = self.detail
        if self.kind != "done":
            return result
        size = len(self.clip) + len(self.poster) + sum(map(len, self.beside.values()))
        if size > limit:
            raise TooLarge("finished clip", size, limit)
        result.update(
            clip=encode_bytes(self.clip, "finished clip", limit=limit),
            poster=encode_bytes(self.poster, "clip's poster", limit=limit),
            encoded=self.encoded,
            request=self.request,
            prompt=self.prompt,
            timings=self.timings,
            verdict=None if self.verdict is None else dataclasses.asdict(self.verdict),
            rewrite_blocks=[dataclasses.asdict(hit) for hit in self.rewrite_blocks],
            beside={
                name: encode_bytes(data, "draft", limit=limit) for name, data in self.beside.items()
            },
        )
        return result

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Outcome:
        kind: OutcomeKind = result.get("outcome", "failed")
        sentence, detail = str(result.get("sentence", "")), str(result.get("detail", ""))
        if kind != "done":
            return cls(kind=kind, sentence=sentence, detail=detail)
        verdict = result.get("verdict")
        return cls(
            kind=kind,
            clip=decode_bytes(result["clip"]),
            poster=decode_bytes(result["poster"]),
            encoded=dict(result["encoded"]),
            request=dict(result["request"]),
            prompt=dict(result["prompt"]),
            timings={str(name): float(value) for name, value in result["timings"].items()},
            verdict=_verdict_from_wire(verdict) if verdict else None,
            rewrite_blocks=tuple(_known(BlockHit, hit) for hit in result.get("rewrite_blocks", ())),
            beside={
                str(name): decode_bytes(text) for name, text in result.get("beside", {}).items()
            },
        )

    def made_at(self, path: Path) -> MadeClip:
        """Write the clip at ``path`` (its poster beside it): the MadeClip the pipeline would
        have returned on this host."""
        poster = poster_beside(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Only the names a grid's drafts have: a name from the wire never picks a folder.
        expected = _names_beside(path)
        for name, data in self.beside.items():
            if name in expected:
                expected[name].write_bytes(data)
        poster.write_bytes(self.poster)
        path.write_bytes(self.clip)
        clip = EncodedClip(
            path=path, poster_path=poster, **_known_values(EncodedClip, self.encoded)
        )
        request = ResolvedRequest(
            start_image=None, **_known_values(ResolvedRequest, self.request, skip=_PICTURES)
        )
        prompt = ChosenPrompt(
            text=str(self.prompt["text"]),
            rewritten=self.prompt.get("rewritten"),
            note=self.prompt.get("note"),
        )
        return MadeClip(clip=clip, request=request, prompt=prompt, timings=dict(self.timings))


def _names_beside(clip: Path) -> dict[str, Path]:
    """The files a grid at ``clip`` may have beside it, by what follows the clip's name."""
    return {path.name.removeprefix(clip.stem): path for path in files_beside_grid(clip)}


def _verdict_from_wire(data: Mapping[str, Any]) -> OutputVerdict:
    return OutputVerdict(
        verdict=Verdict(data["verdict"]),
        scores={str(name): float(value) for name, value in data.get("scores", {}).items()},
        flagged=tuple(data.get("flagged", ())),
        hold=bool(data.get("hold", False)),
        detail=str(data.get("detail", "")),
        seconds=float(data.get("seconds", 0.0)),
    )


def _known(cls: type[Any], data: Mapping[str, Any]) -> Any:
    """``cls(**data)`` with only the fields ``cls`` has (a newer sender may add some)."""
    return cls(**_known_values(cls, data))


def _known_values(
    cls: type[Any], data: Mapping[str, Any], *, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {name: value for name, value in data.items() if name in _field_names(cls) - set(skip)}


def _field_names(cls: type[Any]) -> set[str]:
    return {item.name for item in dataclasses.fields(cls)}


def _maybe_bytes(text: Any) -> bytes | None:
    return decode_bytes(text) if isinstance(text, str) else None


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"
