"""A multi-turn conversation on RLHF-Dialogue-v0's models, the policy in the assistant's seat.

    python docs/examples/dialogue_multi_turn.py --conversation 3 --policy runs/ppo/final_policy

An episode of the env is one assistant reply. A multi-turn loop replays one of the world's
generated conversations with a simulated user: the user says the generator's turns in order
(a greeting with a name, small talk, the turn that names a variant, the request), every
assistant turn is the policy's own reply written after the history so far, and the last
reply, to the request, is scored by the preference model and by the gold judge (the record
is the request's). Only the shipped assets and plain `transformers` are used. To train on
whole conversations, put this loop in an agent's rollout, or give the env such histories as
prompts (its ``dataset=`` argument takes any `PromptSource`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import tyro
from transformers import AutoModelForCausalLM

import rlhf_gym


@dataclass
class Args:
    conversation: int = 0  # the test split's n-th conversation
    policy: str | None = None  # a causal LM folder or hub id; default: the env's SFT policy
    temperature: float = 0.7  # the protocol's
    seed: int = 0


def user_turns(prompt: str) -> tuple[str, list[str]]:
    """The context line and the user's turns of a generated conversation (its assistant turns dropped)."""
    context, *turns = prompt.removesuffix("\nASSISTANT:").split("\nUSER: ")
    return context, [turn.split("\nASSISTANT:")[0] for turn in turns]


def main(args: Args) -> tuple[str, float, float]:
    """Print the conversation and return the last reply with its proxy and gold scores."""
    torch.manual_seed(args.seed)
    task = rlhf_gym.get_task("RLHF-Dialogue-v0")
    tokenizer, (prompt,) = task.tokenizer(), task.prompt_source("test").get_many([args.conversation])
    model = AutoModelForCausalLM.from_pretrained(args.policy or task.policy_path()).eval()
    context, turns = user_turns(prompt.text)
    history = context
    for turn in turns:
        history += f"\nUSER: {turn}\nASSISTANT:"
        inputs = tokenizer(history, return_tensors="pt")
        with torch.no_grad():
            output = model.generate(**inputs, do_sample=True, temperature=args.temperature, top_k=0, top_p=1.0,
                                    max_new_tokens=task.max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        reply = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        print(f"USER: {turn}\nASSISTANT:{reply}")
        last_prompt, history = history, history + reply
    proxy = float(task.preference_model(torch.device("cpu")).score([last_prompt], [reply])[0])
    gold = float(task.gold_judge([replace(prompt, text=last_prompt)], [reply])[0])
    print(f"last reply: gold {gold:.3f}, proxy {proxy:+.2f} (context: {context[:60]}...)")
    return reply, proxy, gold


if __name__ == "__main__":
    main(tyro.cli(Args))
