"""Prefixed random ids (``file-…``, ``ftjob-…``) as the API contract names them."""

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"
