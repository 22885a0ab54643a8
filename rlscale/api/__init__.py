"""The Python API: one function per tool, over iterables of dicts, with the commands' options
and defaults. Import them from :mod:`rlscale` (``rlscale.reward(records)``); each module here
imports its heavy dependencies (torch, transformers, SymPy) only when called."""
