"""Zero-shot SQuAD F1 and exact match of a model under several prompts, on questions of the train split.

How the SQuAD prompt of ``configs/results/squad-smollm2-top2-zpl.yaml`` was chosen (docs/results.md, SQuAD):
greedy answers of up to 24 tokens, cut at the first newline, scored with paczero's own SQuAD metrics. The
questions are a seeded draw from the train split, not the test set the results report::

    PACZERO_DATA_DIR=../shared/data python examples/squad_prompts.py --questions 48 --prompts short,short2

About 3 s per question and prompt on 2 CPU cores for SmolLM2-135M.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from paczero.settings import load_config
from paczero.data.prompts import fill_template
from paczero.data.squad import PROMPT, load_squad
from paczero.metrics import exact_match, f1_score
from paczero.models import load_model

PROMPTS = {
    "mezo": PROMPT,
    "short": "Context: {context}\nQuestion: {question}\nAnswer with a few words copied from the context.\nAnswer:",
    "short2": ("Context: {context}\nQuestion: {question}\nAnswer in as few words as possible, copied from the "
               "context.\nAnswer:"),
}
CHAT = {  # the tokenizer's chat template around a system message (or none) and the user's turn
    "chat": ("Answer the question with a short phrase copied from the context. No sentence, just the phrase.",
             "Context: {context}\nQuestion: {question}"),
    "chat2": (None, "{context}\n\nQuestion: {question}\nAnswer with the exact words from the text above, as briefly "
                    "as possible."),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/results/squad-smollm2-top2-zpl.yaml")
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--prompts", default=",".join([*PROMPTS, *CHAT]))
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    args = parser.parse_args()
    cfg = load_config(args.config, [])
    loaded = load_model(cfg.model, seed=0)
    model, tok = loaded.model, loaded.tokenizer
    fields = "\x00{title}\x00{context}\x00{question}"  # the raw fields, recovered from one filled template
    train, _ = load_squad(cfg.data.data_dir, template=fields)
    questions = list(train)
    random.Random(args.seed).shuffle(questions)
    questions = questions[:args.questions]
    stops = [i for i in range(len(tok)) if "\n" in tok.decode([i])] + [tok.eos_token_id]
    for name in args.prompts.split(","):
        start, f1s, ems = time.time(), [], []
        for record in questions:
            title, context, question = record.prompt.split("\x00")[1:]
            values = {"title": title, "context": context, "question": question}
            if name in CHAT:
                system, user = CHAT[name]
                turns = ([{"role": "system", "content": system}] if system else []) + [
                    {"role": "user", "content": fill_template(user, values)}]
                text = tok.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
            else:
                text = fill_template(PROMPTS[name], values)
            ids = tok(text, return_tensors="pt").input_ids
            with torch.no_grad():
                out = model.generate(ids, max_new_tokens=args.max_new_tokens, do_sample=False, eos_token_id=stops,
                                     pad_token_id=tok.eos_token_id)
            answer = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).split("\n")[0].strip()
            f1s.append(f1_score(answer, record.answers))
            ems.append(exact_match(answer, record.answers))
        print(f"{name}: F1 {sum(f1s) / len(f1s):.3f}, EM {sum(ems) / len(ems):.3f} on {len(questions)} questions "
              f"({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
