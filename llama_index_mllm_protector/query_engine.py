"""``ProtectedQueryEngine``: checks a query engine's final answer against the user's question."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self, overload

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.response.schema import (
    RESPONSE_TYPE,
    AsyncStreamingResponse,
    PydanticResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.callbacks import CallbackManager
from llama_index.core.llms import LLM
from llama_index.core.prompts.mixin import PromptMixinType
from llama_index.core.schema import NodeWithScore, QueryBundle

from llama_index_mllm_protector.building import (
    ProtectorSource,
    build_protector,
)
from llama_index_mllm_protector.events import dispatch_verdicts
from llama_index_mllm_protector.guarding import METADATA_KEY, aprotect, protect, verdict_metadata
from llama_index_mllm_protector.streams import acollect, areplay, replay
from llama_index_mllm_protector.verified import PENDING, areleased, released, stream_verdict
from protector_models import ConfigError, Pair, Protector, ProtectorConfig, Result, StreamOutcome
from protector_models.config.schema import Action, check_action, check_threshold


class ProtectedQueryEngine(BaseQueryEngine):
    """Wraps any query engine; the answer is checked with the question and replaced when flagged.

    Returns the inner engine's response type with its source nodes, and the verdict under
    ``response.metadata["mllm_protector"]``; a benign answer is returned byte-for-byte. Streaming responses
    are buffered (the full answer is checked, then the generator yields the original chunks or the replacement),
    or, with the protector's ``streaming.release: verified``, released as the detector's windows over them pass,
    the verdict filling the metadata when the stream ends. A flagged ``PydanticResponse`` that is replaced
    becomes a plain ``Response``.
    ``action`` and ``threshold`` override the protector's; ``action="raise"`` raises
    :class:`~protector_models.HarmfulContentError`.
    """

    def __init__(
        self,
        query_engine: BaseQueryEngine,
        protector: ProtectorSource = None,
        *,
        action: Action | None = None,
        threshold: float | None = None,
        detoxify_llm: LLM | None = None,
        metadata_key: str = METADATA_KEY,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        if not isinstance(query_engine, BaseQueryEngine):
            raise ConfigError(
                f"query_engine must be a LlamaIndex BaseQueryEngine, e.g. index.as_query_engine(); "
                f"got {type(query_engine).__name__}"
            )
        super().__init__(callback_manager or query_engine.callback_manager)
        self._query_engine = query_engine
        self._protector = build_protector(protector, detoxify_llm=detoxify_llm)
        self.action = check_action(action)
        self.threshold = check_threshold(threshold)
        self.metadata_key = metadata_key

    @classmethod
    def from_config(
        cls,
        query_engine: BaseQueryEngine,
        config: ProtectorConfig | Mapping[str, Any] | str | Path,
        **kwargs: Any,
    ) -> Self:
        """Wrap ``query_engine``; the protector comes from a config, a dict, a YAML path or a preset."""
        return cls(query_engine, Protector.from_config(config), **kwargs)

    @classmethod
    def from_yaml(cls, query_engine: BaseQueryEngine, path: str | Path, **kwargs: Any) -> Self:
        """Wrap ``query_engine`` with a protector built from the core's YAML file."""
        return cls(query_engine, Protector.from_yaml(path), **kwargs)

    @classmethod
    def from_preset(cls, query_engine: BaseQueryEngine, name: str, **kwargs: Any) -> Self:
        """Wrap ``query_engine`` with a protector built from a named preset."""
        return cls(query_engine, Protector.from_preset(name), **kwargs)

    @property
    def protector(self) -> Protector:
        """The protector doing the checking."""
        return self._protector

    @property
    def query_engine(self) -> BaseQueryEngine:
        """The wrapped query engine."""
        return self._query_engine

    def _get_prompt_modules(self) -> PromptMixinType:
        return {"query_engine": self._query_engine}

    def retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """The inner engine's retrieval (no answer yet, so nothing to check: see the postprocessor)."""
        return self._query_engine.retrieve(query_bundle)

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        response = self._query_engine.query(query_bundle)
        if isinstance(response, AsyncStreamingResponse):
            raise TypeError("the inner engine returned an async stream from query(); call aquery() instead")
        if isinstance(response, StreamingResponse) and self._verifies(response):
            return self._verified(response, query_bundle)
        if isinstance(response, StreamingResponse):
            deltas = _buffered(response)
            result = self._check(query_bundle, "".join(deltas))
            return self._streaming(response, deltas, result, query_bundle)
        result = self._check(query_bundle, _answer_text(response))
        return self._finished(response, result, query_bundle)

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        response = await self._query_engine.aquery(query_bundle)
        if isinstance(response, StreamingResponse | AsyncStreamingResponse) and self._verifies(response):
            return self._verified(response, query_bundle)
        if isinstance(response, AsyncStreamingResponse):
            deltas = await acollect(response.async_response_gen())
        elif isinstance(response, StreamingResponse):
            deltas = await asyncio.to_thread(_buffered, response)
        else:
            result = await self._acheck(query_bundle, _answer_text(response))
            return self._finished(response, result, query_bundle)
        result = await self._acheck(query_bundle, "".join(deltas))
        if isinstance(response, AsyncStreamingResponse):
            return AsyncStreamingResponse(
                response_gen=areplay(deltas, result),
                source_nodes=response.source_nodes,
                metadata=self._metadata(response.metadata, result, query_bundle),
            )
        return self._streaming(response, deltas, result, query_bundle)

    def _verifies(self, response: StreamingResponse | AsyncStreamingResponse) -> bool:
        """Whether to release the stream as it is verified (not when the inner engine already read it whole)."""
        return self._protector.streaming.release == "verified" and response.response_txt is None

    @overload
    def _verified(self, response: StreamingResponse, query_bundle: QueryBundle) -> StreamingResponse: ...

    @overload
    def _verified(self, response: AsyncStreamingResponse, query_bundle: QueryBundle) -> AsyncStreamingResponse: ...

    def _verified(
        self, response: StreamingResponse | AsyncStreamingResponse, query_bundle: QueryBundle
    ) -> StreamingResponse | AsyncStreamingResponse:
        """The stream, released as the detector's windows over it pass; the verdict fills the metadata (and the
        event goes out) when it ends."""
        images = _images(query_bundle)
        metadata = {**(response.metadata or {}), self.metadata_key: dict(PENDING)}

        def ended(outcome: StreamOutcome | None) -> None:
            metadata[self.metadata_key] = stream_verdict(outcome, images=images)
            if outcome is not None:
                dispatch_verdicts([outcome.result], "response", images=[images])

        async def aended(outcome: StreamOutcome | None) -> None:
            ended(outcome)

        stream = self._protector.stream(query_bundle.query_str, threshold=self.threshold, action=self.action)
        if isinstance(response, AsyncStreamingResponse):
            deltas = response.async_response_gen()
            gen = areleased(stream, deltas, aended, aclose=deltas.aclose)
            return AsyncStreamingResponse(response_gen=gen, source_nodes=response.source_nodes, metadata=metadata)
        tokens = response.response_gen
        return StreamingResponse(
            response_gen=released(stream, tokens, ended, close=tokens.close),
            source_nodes=response.source_nodes,
            metadata=metadata,
        )

    def _check(self, query_bundle: QueryBundle, answer: str) -> Result:
        pair = [Pair(query_bundle.query_str, answer)]
        images = [_images(query_bundle)]
        return protect(self._protector, pair, "response", threshold=self.threshold, action=self.action, images=images)[
            0
        ]

    async def _acheck(self, query_bundle: QueryBundle, answer: str) -> Result:
        pair = [Pair(query_bundle.query_str, answer)]
        images = [_images(query_bundle)]
        results = await aprotect(
            self._protector, pair, "response", threshold=self.threshold, action=self.action, images=images
        )
        return results[0]

    def _finished(
        self, response: Response | PydanticResponse, result: Result, query_bundle: QueryBundle
    ) -> Response | PydanticResponse:
        metadata = self._metadata(response.metadata, result, query_bundle)
        if isinstance(response, PydanticResponse) and not result.changed:
            return PydanticResponse(response.response, response.source_nodes, metadata)
        if isinstance(response, Response) and not result.changed:
            return Response(response.response, response.source_nodes, metadata)
        return Response(result.output, response.source_nodes, metadata)

    def _streaming(
        self, response: StreamingResponse, deltas: list[str], result: Result, query_bundle: QueryBundle
    ) -> StreamingResponse:
        return StreamingResponse(
            response_gen=replay(deltas, result),
            source_nodes=response.source_nodes,
            metadata=self._metadata(response.metadata, result, query_bundle),
        )

    def _metadata(self, metadata: dict[str, Any] | None, result: Result, query_bundle: QueryBundle) -> dict[str, Any]:
        return {**(metadata or {}), self.metadata_key: verdict_metadata(result, images=_images(query_bundle))}


def _answer_text(response: Response | PydanticResponse) -> str:
    if isinstance(response, PydanticResponse):
        return response.response.model_dump_json() if response.response is not None else ""
    return response.response or ""


def _buffered(response: StreamingResponse) -> list[str]:
    if response.response_txt is not None:
        return [response.response_txt]
    return list(response.response_gen)


def _images(query_bundle: QueryBundle) -> int:
    return int(bool(query_bundle.image_path))
