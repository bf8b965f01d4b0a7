from __future__ import annotations

from app.datasets.report import methods_of
from app.files.models import File


def file_object(f: File) -> dict:
    return {
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": int(f.created_at),
        "filename": f.filename,
        "purpose": f.purpose,
        "status": f.status,
        "status_details": f.status_details,
        "expires_at": None,
        "format": (f.report or {}).get("format"),
        "rows": (f.report or {}).get("rows_valid"),
        # vrft: the training methods (method.type) this file can be used with, once validated
        "methods": methods_of(f.report) if f.report else None,
    }


def validation_object(f: File) -> dict:
    report = f.report or {}
    return {
        "object": "file.validation",
        "file_id": f.id,
        "status": f.status,
        "format": report.get("format"),
        "rows_read": report.get("rows_read", 0),
        "rows_valid": report.get("rows_valid", 0),
        "image_count": report.get("image_count", 0),
        "reference_fields": report.get("reference_fields", []),
        "problem_count": report.get("problem_count", 0),
        "problems": report.get("problems", []),
        "methods": methods_of(report),
        # for each method the file does not suit, the first row that rules it out
        "unsuited": report.get("unsuited", {}),
        "status_details": f.status_details,
    }
