"""``POST /v1/chat/completions``: base, ``ft:`` and checkpoint models, answered by inference workers."""
