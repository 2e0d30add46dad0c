"""The quickstart example runs as written (here with the tiny detector in place of the embedded default)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from protector_models import Protector

EXAMPLE = Path(__file__).parents[2] / "examples" / "llama_index_quickstart.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llama_index_quickstart", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_screens_the_harmful_document_and_the_harmful_answer(
    keyword_detector_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the tiny detector reads at most 128 tokens: enough for the example's whole echoed context
    model = {"source": str(keyword_detector_dir), "max_length": 128}
    protector = Protector.from_config({"detector": {"model": model}})
    example = load_example()
    screened, guarded = example.main(protector)
    assert len(screened.source_nodes) == 2
    assert "poison" not in str(screened)
    assert screened.metadata["mllm_protector"]["flagged"] is False
    assert str(guarded) == protector.refusal_text
    assert guarded.metadata["mllm_protector"]["flagged"] is True
    assert "2 of 3 documents reached the LLM" in capsys.readouterr().out
