"""The Zed settings blazedit documents, as pydantic models of the shape Zed's docs give.

Sources: zed `docs/src/ai/use-api-access.md` (openai_compatible providers), agent settings
(`inline_assistant_model`, `inline_assistant_use_streaming_tools`), `docs/src/ai/edit-prediction.md`
(`edit_predictions.open_ai_compatible_api`) and `lsp.<id>` (`binary`, `initialization_options`, `settings`).
Unknown keys are errors, so a typo in a documented snippet fails the tests instead of being ignored by Zed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, HttpUrl, PositiveInt


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Capabilities(_Shape):
    tools: bool = True
    images: bool = False
    parallel_tool_calls: bool = False
    prompt_cache_key: bool = False
    chat_completions: bool = True
    interleaved_reasoning: bool = False


class AvailableModel(_Shape):
    name: str
    display_name: str | None = None
    max_tokens: PositiveInt
    max_output_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    reasoning_effort: str | None = None
    capabilities: Capabilities = Capabilities()


class OpenAICompatibleProvider(_Shape):
    api_url: HttpUrl
    available_models: list[AvailableModel]
    custom_headers: dict[str, str] | None = None


class LanguageModels(_Shape):
    openai_compatible: dict[str, OpenAICompatibleProvider]


class ModelChoice(_Shape):
    provider: str
    model: str


class Agent(_Shape):
    inline_assistant_model: ModelChoice | None = None
    inline_assistant_use_streaming_tools: bool = True


PromptFormat = Literal[
    "infer", "zeta", "zeta2", "code_llama", "star_coder", "deepseek_coder", "qwen", "code_gemma", "codestral",
    "glm", "sweep",
]  # fmt: skip


class OpenAICompatibleEditPredictions(_Shape):
    api_url: HttpUrl
    model: str
    prompt_format: PromptFormat = "infer"
    max_output_tokens: PositiveInt = 256


class EditPredictions(_Shape):
    provider: Literal["none", "copilot", "zed", "codestral", "ollama", "open_ai_compatible_api", "mercury"]
    open_ai_compatible_api: OpenAICompatibleEditPredictions | None = None
    mode: Literal["eager", "subtle"] | None = None
    disabled_globs: list[str] | None = None


class LspBinary(_Shape):
    path: str | None = None
    arguments: list[str] | None = None
    env: dict[str, str] | None = None


class LspServer(_Shape):
    binary: LspBinary | None = None
    initialization_options: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None


class ZedSettings(_Shape):
    language_models: LanguageModels | None = None
    agent: Agent | None = None
    edit_predictions: EditPredictions | None = None
    lsp: dict[str, LspServer] | None = None
