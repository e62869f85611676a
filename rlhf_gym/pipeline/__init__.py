"""The asset pipeline: how a world's shipped tokenizer, SFT policy and preference model are
trained (``rlhf-gym build-assets``). Nothing at env run time imports it.

- `tokenizer_training`: byte-level BPE from a corpus;
- `tiny_models`: the small GPT-2 architectures the assets use;
- `sft`: supervised fine-tuning on (prompt, completion) pairs;
- `preference_training`: Bradley–Terry preference models from labelled comparisons.
"""
