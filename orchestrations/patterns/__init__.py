"""The multi-agent orchestration engine: one module per pattern over a small shared base.

Plain async Python: it imports no Django, DRF or Channels. Callers pass the agents, the pattern
config, the inputs, a RunAgent and a Recorder in a `PatternContext` and await `run_pattern`.
"""

from orchestrations.patterns.base import Pattern, PatternContext, PatternResult
from orchestrations.patterns.config import validate_pattern_config
from orchestrations.patterns.registry import PATTERNS, pattern_input_fields, pattern_list
from orchestrations.patterns.run import run_pattern

__all__ = [
    "PATTERNS",
    "Pattern",
    "PatternContext",
    "PatternResult",
    "pattern_input_fields",
    "pattern_list",
    "run_pattern",
    "validate_pattern_config",
]
