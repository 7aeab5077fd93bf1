"""ErrorInfo reasons of the render service (domain "viarte.render"), as listed in render.proto and project.proto."""

from __future__ import annotations

import enum

__all__ = ["Reason"]


class Reason(enum.StrEnum):
    INVALID_TIMELINE = "INVALID_TIMELINE"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    ASSET_NOT_FOUND = "ASSET_NOT_FOUND"
    CANVAS_TOO_LARGE = "CANVAS_TOO_LARGE"
    TIMELINE_TOO_LONG = "TIMELINE_TOO_LONG"
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    QUEUE_FULL = "QUEUE_FULL"
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"
    ENCODER_FAILED = "ENCODER_FAILED"
    UPSCALE_FAILED = "UPSCALE_FAILED"
    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
    PROJECT_NOT_FOUND = "PROJECT_NOT_FOUND"
    ETAG_MISMATCH = "ETAG_MISMATCH"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    # executor "ray": the cluster cannot be reached (UNAVAILABLE; retried in the background).
    RAY_UNAVAILABLE = "RAY_UNAVAILABLE"
    # AnalyzeMedia: longer than analyze_max_seconds (INVALID_ARGUMENT), over its time (DEADLINE_EXCEEDED),
    # the media did not decode (INVALID_ARGUMENT).
    MEDIA_TOO_LONG = "MEDIA_TOO_LONG"
    ANALYSIS_TIMEOUT = "ANALYSIS_TIMEOUT"
    ANALYSIS_FAILED = "ANALYSIS_FAILED"
