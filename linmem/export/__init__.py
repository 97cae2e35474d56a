"""Hub export: self-contained remote code (`trust_remote_code=True` without linmem) and model cards.

`linmem.hub` is the public entry point (save/push hooks); this package holds the parts:
  flatten.py         package modules -> flat single-dot sibling files transformers can download and check
  remote_imports.py  the dynamic-import shim the flat files use (Triton modules are imported by name)
  remote_code.py     writes the flat files, entry files and `auto_map` into a save directory
  state_size.py      recurrent-state bytes per sequence, from a config
  model_card.py      the README model card
"""
