"""Where other tools keep their models on this machine, as each of them decides it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

# The sources of the library, in the order it lists them.
DEFAULT, FOLDER, HUGGING_FACE, LM_STUDIO, GPT4ALL, OLLAMA, LLAMA_CPP = (
    "default", "folder", "Hugging Face", "LM Studio", "GPT4All", "Ollama", "llama.cpp",
)  # fmt: skip


@dataclass(frozen=True)
class Place:
    """A folder a tool keeps models in, and which tool."""

    source: str
    path: Path


def hugging_face_cache() -> Path:
    """The Hub cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub (as
    huggingface_hub reads them when it starts; read here again, so a change shows)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "huggingface"
    )
    return Path(home).expanduser() / "hub"


def lm_studio_folders() -> list[Path]:
    """LM Studio's models folders: ~/.lmstudio/models (0.3 on), ~/.cache/lm-studio/models
    (before)."""
    home = Path.home()
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def gpt4all_folder() -> Path:
    """GPT4All's data folder (Qt's app-local data location for nomic.ai/GPT4All)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(platformdirs.user_data_dir())
    return base / "nomic.ai" / "GPT4All"


def ollama_folder() -> Path:
    """Ollama's store: OLLAMA_MODELS, else ~/.ollama/models."""
    configured = os.environ.get("OLLAMA_MODELS")
    return Path(configured).expanduser() if configured else Path.home() / ".ollama" / "models"


def llama_cpp_cache() -> Path:
    """llama.cpp's download cache (`-hf`): LLAMA_CACHE, else the user cache dir's llama.cpp."""
    configured = os.environ.get("LLAMA_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_cache_dir("llama.cpp", appauthor=False))


def other_tools() -> list[Place]:
    """Every place another tool keeps models (whether or not it exists here)."""
    places = [Place(HUGGING_FACE, hugging_face_cache())]
    places += [Place(LM_STUDIO, folder) for folder in lm_studio_folders()]
    places += [Place(GPT4ALL, gpt4all_folder()), Place(OLLAMA, ollama_folder())]
    places.append(Place(LLAMA_CPP, llama_cpp_cache()))
    return places
