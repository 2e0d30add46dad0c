"""Train a tiny detoxifier from scratch on CPU, for measuring the pipeline end to end when no pretrained causal LM is
at hand (a real detoxifier starts from a pretrained LM: `mllm-protector train-detoxifier --base <hub id or dir>`).

It builds a byte-level BPE tokenizer and a small random Llama from the training triples (rows after the first
``--hold-out``, which are left for eval-detox), then fine-tunes it fully with the project's trainer. Expect
refusal-like openings and babble, not detoxified answers: it has seen a few thousand short texts.

python scripts/train_tiny_detoxifier.py --data ../shared/data/train/pku_saferlhf_detox_triples.jsonl \
    --output runs/tiny-detoxifier --hold-out 200 --max-steps 300
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from protector_models.detox.data import read_detox_examples
from protector_models.models.templates import DETOXIFY_TEMPLATE
from protector_models.training import DetoxifierTrainingArgs, train_detoxifier

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def build_base(texts: list[str], path: Path, *, vocab_size: int, hidden: int, layers: int, seed: int) -> Path:
    """A byte-level BPE tokenizer trained on ``texts`` and a random Llama sized to it, saved to ``path``."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=3 * hidden,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--output", "-o", type=Path, default=Path("runs/tiny-detoxifier"))
    parser.add_argument("--hold-out", type=int, default=200, help="Leave the first N rows out (eval-detox's slice).")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--max-target-tokens", type=int, default=96)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    examples = read_detox_examples(options.data)[options.hold_out :]
    texts = [DETOXIFY_TEMPLATE] + [text for e in examples for text in (e.question, e.answer, e.target)]
    base = build_base(
        texts,
        options.output / "base",
        vocab_size=options.vocab_size,
        hidden=options.hidden,
        layers=options.layers,
        seed=options.seed,
    )
    args = DetoxifierTrainingArgs(
        output_dir=str(options.output / "detoxifier"),
        base=str(base),
        mode="full",
        max_steps=options.max_steps,
        learning_rate=options.lr,
        batch_size=options.batch_size,
        grad_accum=1,
        max_length=options.max_length,
        max_target_tokens=options.max_target_tokens,
        warmup_ratio=0.05,
        seed=options.seed,
        device="cpu",
        data_files=[f"{options.data} (rows after the first {options.hold_out})"],
    )
    outcome = train_detoxifier(examples, args)
    losses = outcome.losses
    print(
        json.dumps(
            {
                "examples": outcome.examples,
                "steps": outcome.steps,
                "seconds": round(outcome.seconds),
                "loss_first_10": round(sum(losses[:10]) / len(losses[:10]), 3),
                "loss_last_10": round(sum(losses[-10:]) / len(losses[-10:]), 3),
                "output_dir": str(outcome.output_dir),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
