"""Dataset formats and validation → normalised examples. No torch, no database, no HTTP.

The files API hands over an upload already on disk; everything here streams it:

    report = validate_dataset(path, "train.zip", Limits())      # at upload
    for example in iter_examples(path, "train.zip"):            # in the trainer
        example["prompt"], example["image"], example["item"]["solution"]

Formats: OpenAI RFT JSONL, Visual-RFT JSONL, a zip/tar(.gz) holding one of those as a manifest with
images beside it, and Hugging Face Parquet (``image`` {bytes, path}, ``problem``, ``solution``).
"""

from app.datasets.limits import Limits
from app.datasets.pipeline import iter_examples, validate_dataset
from app.datasets.report import Code, Problem, ValidationReport

__all__ = ["Code", "Limits", "Problem", "ValidationReport", "iter_examples", "validate_dataset"]
