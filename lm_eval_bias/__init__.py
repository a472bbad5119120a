"""lm-eval-bias: social-bias benchmarks and item-level analysis for quantized LLMs.

This module is imported at every Python start-up by the `.pth` hook (see `_startup.py`), so it
must stay free of imports.
"""

__version__ = "0.1.0"
