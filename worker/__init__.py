"""PromptSpool's Qt-free core: settings, jobs, the queue, the llama.cpp engine and the CLI."""

__version__ = "0.1.0"
