"""Prompt rewriting: a language model turns a short idea into a detailed scene description.

``build_rewriter(RewriterConfig(...))`` gives a rewriter whose ``await rewrite(prompt, mode=...,
seed=...)`` never raises for model trouble: it falls back to the user's prompt and says why.
"""

from __future__ import annotations

from .base import BackendError, Completion, PromptRewriter, RewriteMode, RewriteResult, TextBackend
from .config import RewriterConfig
from .rewriter import DisabledRewriter, GuardedRewriter, build_backend, build_rewriter

__all__ = [
    "BackendError",
    "Completion",
    "DisabledRewriter",
    "GuardedRewriter",
    "PromptRewriter",
    "RewriteMode",
    "RewriteResult",
    "RewriterConfig",
    "TextBackend",
    "build_backend",
    "build_rewriter",
]
