"""The response shapes of the files API, for the OpenAPI schema. ``schemas.file_object`` &
``validation_object`` build the bodies; extra fields are allowed so a new field is never filtered out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FileObject(_Open):
    id: str
    object: Literal["file"]
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str  # uploaded | processed | error
    status_details: str | None = None
    expires_at: int | None = None
    format: str | None = None  # vrft: the detected dataset format
    rows: int | None = None  # vrft: valid rows
    methods: list[str] | None = None  # vrft: the method.type values this file can train with


class FileList(_Open):
    object: Literal["list"]
    data: list[FileObject]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


class FileDeleted(_Open):
    id: str
    object: Literal["file"]
    deleted: bool


class FileValidation(_Open):
    object: Literal["file.validation"]
    file_id: str
    status: str
    format: str | None = None
    rows_read: int
    rows_valid: int
    image_count: int
    reference_fields: list[str]
    problem_count: int
    problems: list[dict[str, Any]]
    methods: list[str] = []
    unsuited: dict[str, dict[str, Any]] = {}  # method → the first row ruling it out (line, field, message)
    status_details: str | None = None
