"""Inference workers: base models kept loaded, adapters cached, chat requests batched (issue 13)."""
