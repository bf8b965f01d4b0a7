"""Built-in tiny random models, one per family, written as complete model folders.

`make_tiny_model(family, folder)` writes what a real checkpoint folder holds — `config.json`,
`model.safetensors`, `generation_config.json`, `tokenizer.json` + `tokenizer_config.json`,
`preprocessor_config.json`, `chat_template.jinja` — so that the same loading code runs on a CPU, with
no download, as on a real Qwen checkpoint. Everything is seeded: two builds give identical bytes of
weights.

The tokenizer is byte-level BPE with the 256 byte symbols and no merges (one token per byte), plus
the Qwen special tokens. The vocabulary is exactly that long, so any sampled id decodes.

`resolve_model(name, cache_dir)` maps the names `vrft/tiny-qwen2-vl`, `vrft/tiny-qwen2.5-vl`,
`vrft/tiny-qwen3-vl` to a folder built once (in a temp dir, then renamed: concurrent builders never
see half a folder); any other name is returned unchanged as a path.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from app import catalog

TINY_NAMES = catalog.BUILTIN_TINY_MODELS  # tiny name -> family: the API's table (app.catalog)

# Qwen's special tokens, in Qwen's order (their ids differ from Qwen's: ours follow the 256 bytes).
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
    "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# Qwen2-VL's chat template, written by hand and shortened: no default system message, so that the
# byte-level prompts of the tiny models stay short. Images may be given as {"type": "image"}.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

HIDDEN = 64
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS  # 16 → mrope sections sum to 8
LM_HEAD_STD = 0.15


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins that byte-level BPE uses for bytes, indexed by byte value.

    Printable Latin-1 bytes stand for themselves; the others are shifted to code points 256+ in
    byte order (the GPT-2 convention, which `tokenizers`' ByteLevel pre-tokenizer applies).
    """
    keep = set(range(ord("!"), ord("~") + 1)) | set(range(ord("¡"), ord("¬") + 1)) | set(range(ord("®"), ord("ÿ") + 1))
    symbols, shifted = [], 0
    for b in range(256):
        if b in keep:
            symbols.append(chr(b))
        else:
            symbols.append(chr(256 + shifted))
            shifted += 1
    return symbols


def _build_tokenizer(folder: Path) -> dict[str, int]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {sym: i for i, sym in enumerate(_byte_symbols())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        model_max_length=32768, chat_template=CHAT_TEMPLATE,
    )
    wrapped.save_pretrained(str(folder))
    return {t: tok.token_to_id(t) for t in SPECIAL_TOKENS} | {"__len__": tok.get_vocab_size()}


def _config(family: str, ids: dict[str, int], text_overrides: dict | None = None,
            vision_overrides: dict | None = None, top_overrides: dict | None = None):
    """A small config of the family: hidden 64, 2 layers, a 2-block vision tower (overridable)."""
    text = dict(
        vocab_size=ids["__len__"], hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=4096,
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
    )
    tokens = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                  vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    tokens |= top_overrides or {}
    if family == "qwen2-vl":
        from transformers import Qwen2VLConfig
        vision = dict(depth=2, embed_dim=32, hidden_size=HIDDEN, num_heads=2, mlp_ratio=2,
                      patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
        return Qwen2VLConfig(text_config=text | (text_overrides or {}),
                             vision_config=vision | (vision_overrides or {}), **tokens)
    if family == "qwen2.5-vl":
        from transformers import Qwen2_5_VLConfig
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=HIDDEN,
                      patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                      fullatt_block_indexes=[1])
        return Qwen2_5_VLConfig(text_config=text | (text_overrides or {}),
                                vision_config=vision | (vision_overrides or {}), **tokens)
    if family == "qwen3-vl":
        from transformers import Qwen3VLConfig
        text |= dict(head_dim=HEAD_DIM, rope_parameters={
            "rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 2, 2], "mrope_interleaved": True})
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=HIDDEN,
                      patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64,
                      deepstack_visual_indexes=[0])
        return Qwen3VLConfig(text_config=text | (text_overrides or {}),
                             vision_config=vision | (vision_overrides or {}), **tokens)
    raise ValueError(f"unknown family {family!r}; expected one of {sorted(set(TINY_NAMES.values()))}")


def _preprocessor_config(family: str) -> dict:
    if family == "qwen3-vl":  # Qwen3-VL: patch 16, mean/std 0.5
        patch, mean, std = 16, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    else:  # Qwen2-VL / Qwen2.5-VL: patch 14, CLIP normalisation
        patch, mean, std = 14, [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    return {"image_processor_type": "Qwen2VLImageProcessor", "patch_size": patch, "temporal_patch_size": 2,
            "merge_size": 2, "image_mean": mean, "image_std": std,
            "min_pixels": 3136, "max_pixels": 401408}


def make_tiny_model(family: str, folder: str | Path, *, seed: int = 0) -> Path:
    """Write a complete random-initialised model folder of `family` into `folder` (created)."""
    return make_model_folder(family, folder, seed=seed)


def make_model_folder(family: str, folder: str | Path, *, seed: int = 0, text: dict | None = None,
                      vision: dict | None = None, top: dict | None = None, dtype: torch.dtype = torch.float32,
                      device: str | None = None, lm_head_std: float | None = LM_HEAD_STD) -> Path:
    """Like `make_tiny_model`, with the text/vision config fields overridden — e.g. the sizes of a real
    checkpoint (the benchmark builds Qwen2-VL-2B's architecture this way, with random weights)."""
    from transformers import AutoModelForImageTextToText, GenerationConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids = _build_tokenizer(folder)
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    (folder / "preprocessor_config.json").write_text(json.dumps(_preprocessor_config(family), indent=2))
    config = _config(family, ids, text, vision, top)
    torch.manual_seed(seed)  # the weights are a pure function of (family, sizes, seed)
    with torch.device(device or "cpu"):
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
    # The output layer gets a wider init than the default 0.02: after the final RMSNorm the hidden
    # state has norm ≈ √64, so 0.02-sized rows confine every logit to about ±1 and no LoRA on the
    # trunk could make any answer likely. With 0.15 the logits span several nats, like a real
    # checkpoint's, and the tiny models can learn (the learning test depends on it).
    if lm_head_std is not None:
        with torch.no_grad():
            model.lm_head.weight.normal_(0.0, lm_head_std)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]], pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"], do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
    model.save_pretrained(str(folder))
    return folder


def _from_hub_cache(repo_id: str) -> Path:
    """A hub id already in the local HF cache (we never download: the service runs offline)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as exc:  # the hub client raises several types for "not cached"; we name the fix
        raise FileNotFoundError(f"model {repo_id!r} is neither a folder, a built-in tiny model "
                                f"({', '.join(TINY_NAMES)}), nor in the local Hugging Face cache") from exc


def resolve_model(name: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Turn a model name into a local folder.

    Built-in tiny names are built once into `cache_dir` (default `~/.cache/vrft/models`) and reused
    after; anything else is taken as a path (or a hub id, which `from_pretrained` resolves offline
    from the HF cache).
    """
    name = str(name)
    if name not in TINY_NAMES:
        if Path(name).is_dir():
            return Path(name)
        return _from_hub_cache(name)
    default = Path.home() / ".cache/vrft/models"
    cache = Path(cache_dir) if cache_dir else Path(os.environ.get("VRFT_MODEL_CACHE", default))
    target = cache / name.replace("/", "--")
    if (target / "model.safetensors").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache))
    try:
        make_tiny_model(TINY_NAMES[name], tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: theirs is as good as ours
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
