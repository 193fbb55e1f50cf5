"""Kaizen code export: an agent as a Python module for the Kailash Kaizen SDK.

The module holds a `Signature` subclass (the system prompt as its docstring, one `InputField` or
`OutputField` per signature field), a `BaseAgentConfig` built from the provider and config sections,
the settings Kaizen has no field for, and `agent = BaseAgent(...)` with a `run` example. Every value
taken from the agent reaches the source through `repr()` (or a docstring proven equal to the text),
so no name or prompt can break out of its literal."""

from __future__ import annotations

import ast
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from agents.models import Agent

# Our provider kinds as Kaizen's `llm_provider`; an OpenAI-compatible server is OpenAI at a base URL.
KAIZEN_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "azure_openai": "azure_openai",
    "ollama": "ollama",
    "openai_compatible": "openai",
    "mock": "mock",
}
MULTI_CYCLE_STEPS = {"react": "max_steps", "self_reflection": "max_cycles"}
PYTHON_TYPES = {
    "string": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "array": "list",
    "object": "dict",
}
# Attributes a field of the same name would hide on the signature class (properties and methods
# of kaizen's Signature); the generated module deletes the class attribute after the class body,
# which keeps the field registered and the inherited attribute working.
SIGNATURE_ATTRIBUTES = frozenset(
    {
        "_clone",
        "add_performance_hook",
        "guidelines",
        "has_list_outputs",
        "input_fields",
        "inputs",
        "instructions",
        "intent",
        "output_fields",
        "outputs",
        "to_dict",
        "with_guidelines",
        "with_instructions",
    }
)
STRATEGY_NOTES = {
    "chain_of_thought": (
        "# Strategy chain_of_thought: Kaizen runs it as a single shot; the studio runtime has the\n"
        "# model reason in a hidden field first and returns only the signature's outputs.\n"
    ),
    "react": "# Strategy react: multi_cycle with one cycle per tool-using step (max_steps).\n",
    "self_reflection": "# Strategy self_reflection: multi_cycle with draft, critique, revise cycles.\n",
}


def agent_kaizen_source(agent: Agent, *, base_url: str | None = None) -> str:
    """Python source of `agent` for the Kailash Kaizen SDK; `base_url` is the provider's endpoint
    when it is not the provider's default."""
    config = agent.config
    signature = config["signature"]
    fields = [*signature["inputs"], *signature["outputs"]]
    names = _Names(field["name"] for field in fields)
    class_name = signature_class_name(agent.name)
    parts = [
        _header(names, uses_literal=any(field["type"] == "enum" for field in fields)),
        f"AGENT_NAME = {_py(agent.name)}\n"
        f"STUDIO_AGENT_ID = {_py(agent.pk)}\n"
        f"STUDIO_VERSION = {_py(agent.version)}\n",
        _signature_class(class_name, signature, names),
        _studio_settings(config),
        _agent_config(config, base_url=base_url),
        f"agent = BaseAgent(config=config, signature={class_name}())\n",
        _run_example(signature["inputs"]),
    ]
    return "\n\n".join(part for part in parts if part)


def _words(agent_name: str) -> list[str]:
    ascii_name = unicodedata.normalize("NFKD", agent_name).encode("ascii", "ignore").decode()
    return re.findall(r"[A-Za-z0-9]+", ascii_name)


def signature_class_name(agent_name: str) -> str:
    """`support bot v2` -> `SupportBotV2Signature` (ASCII letters and digits of the name)."""
    stem = "".join(word[:1].upper() + word[1:] for word in _words(agent_name)) or "Agent"
    if stem[0].isdigit():
        stem = f"Agent{stem}"
    return f"{stem}Signature"


def source_file_name(agent_name: str) -> str:
    """`Ticket triage!` -> `ticket_triage.py`."""
    stem = "_".join(word.lower() for word in _words(agent_name))[:80].strip("_")
    return f"{stem or 'agent'}.py"


class _Names:
    """Names the class body refers to (`str`, `InputField`, ...) under an alias whenever a field of
    the same name would shadow them inside the class."""

    def __init__(self, field_names: Iterable[str]):
        self.taken = set(field_names)
        self.aliases: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        if name not in self.aliases:
            alias = name
            while alias in self.taken:
                alias += "_"
            self.aliases[name] = alias
        return self.aliases[name]

    def imported(self, name: str) -> str:
        alias = self[name]
        return name if alias == name else f"{name} as {alias}"


def _header(names: _Names, *, uses_literal: bool) -> str:
    typing_import = f"from typing import {names.imported('Literal')}\n\n" if uses_literal else ""
    builtin_aliases = "".join(
        f"{names[builtin]} = {builtin}\n" for builtin in PYTHON_TYPES.values() if names[builtin] != builtin
    )
    return (
        '"""A Kaizen Studio agent exported for the Kailash Kaizen SDK (pip install kailash-kaizen).\n'
        "\n"
        "Generated by Kaizen Studio. API keys are never exported: Kaizen reads them from the\n"
        "environment (for example OPENAI_API_KEY or ANTHROPIC_API_KEY).\n"
        '"""\n'
        "\n"
        f"{typing_import}"
        "from kaizen.core.base_agent import BaseAgent\n"
        "from kaizen.core.config import BaseAgentConfig\n"
        f"from kaizen.signatures import {names.imported('InputField')}, "
        f"{names.imported('OutputField')}, Signature\n" + (f"\n{builtin_aliases}" if builtin_aliases else "")
    )


def _signature_class(class_name: str, signature: Mapping[str, Any], names: _Names) -> str:
    lines = [f"class {class_name}(Signature):", f"    {_docstring(signature['system_prompt'])}", ""]
    for field in signature["inputs"]:
        arguments = f"description={_py(field.get('description') or '')}"
        if not field.get("required", True):
            arguments += ", required=False"
        lines.append(_field_line(field, names, f"{names['InputField']}({arguments})"))
    for field in signature["outputs"]:
        description = _py(field.get("description") or "")
        lines.append(_field_line(field, names, f"{names['OutputField']}(description={description})"))
    hidden = [
        field["name"]
        for field in (*signature["inputs"], *signature["outputs"])
        if field["name"] in SIGNATURE_ATTRIBUTES
    ]
    source = "\n".join(lines) + "\n"
    if hidden:
        source += (
            "\n\n# These fields share a name with an attribute of Signature: the fields stay registered,\n"
            "# the class attributes go so that the inherited ones work.\n"
        )
        source += "".join(f"del {class_name}.{name}\n" for name in hidden)
    return source


def _field_line(field: Mapping[str, Any], names: _Names, value: str) -> str:
    return f"    {field['name']}: {_annotation(field, names)} = {value}"


def _annotation(field: Mapping[str, Any], names: _Names) -> str:
    if field["type"] == "enum":
        return f"{names['Literal']}[{', '.join(_py(value) for value in field['enum_values'])}]"
    return names[PYTHON_TYPES[field["type"]]]


def _docstring(text: str) -> str:
    """The system prompt as the class docstring when a triple-quoted literal holds it exactly on
    every Python version (3.13+ strips the common indentation of docstrings); otherwise `__doc__`
    is assigned the repr, which is exact."""
    continuation = text.split("\n")[1:]
    plain = (
        text
        and all(char == "\n" or char.isprintable() for char in text)
        and "\\" not in text
        and '"""' not in text
        and not text.endswith('"')
        and not any(line[:1].isspace() for line in continuation)
    )
    if plain:
        literal = f'"""{text}"""'
        try:
            if ast.literal_eval(literal) == text:
                return literal
        except (SyntaxError, ValueError):
            pass
    return f"__doc__ = {_py(text)}"


def _studio_settings(config: Mapping[str, Any]) -> str:
    settings, provider = config["config"], config["provider"]
    studio = {
        "provider": provider["provider"],
        "provider_id": provider.get("provider_id"),
        **settings,
    }
    for key in ("responses", "latency_ms"):
        if key in provider:
            studio[f"mock_{key}"] = provider[key]
    body = "".join(f"    {_py(key)}: {_py(value)},\n" for key, value in studio.items())
    source = (
        "# The agent's settings in Kaizen Studio, including those BaseAgentConfig has no field for\n"
        "# (timeouts, retries, the studio strategy, the studio provider config and mock script).\n"
        f"STUDIO_SETTINGS = {{\n{body}}}\n"
    )
    tools = config.get("tools") or []
    if tools:
        entries = "".join(
            f"    {_py({key: tool[key] for key in _TOOL_KEY_ORDER if key in tool})},\n" for tool in tools
        )
        source += (
            "\n# Tools of the react strategy: other Kaizen Studio agents and tools of the\n"
            "# organization's MCP servers, offered to the model as functions (export the agents as\n"
            "# well to wire them up as Kaizen tools).\n"
            f"TOOLS = [\n{entries}]\n"
        )
    return source


def _agent_config(config: Mapping[str, Any], *, base_url: str | None) -> str:
    settings, provider = config["config"], config["provider"]
    strategy = settings["strategy"]
    arguments = {
        "llm_provider": KAIZEN_PROVIDERS[provider["provider"]],
        "model": provider["model"],
        "temperature": settings["temperature"],
        "max_tokens": settings["max_tokens"],
        "strategy_type": "multi_cycle" if strategy in MULTI_CYCLE_STEPS else "single_shot",
    }
    if strategy in MULTI_CYCLE_STEPS:
        arguments["max_cycles"] = settings[MULTI_CYCLE_STEPS[strategy]]
    arguments["budget_limit_usd"] = settings.get("budget_limit_usd")
    if base_url:
        arguments["base_url"] = base_url
    body = "".join(f"    {name}={_py(value)},\n" for name, value in arguments.items())
    return STRATEGY_NOTES.get(strategy, "") + f"config = BaseAgentConfig(\n{body})\n"


_EXAMPLES = {"string": None, "int": 1, "float": 0.5, "bool": True, "array": [], "object": {}}


def _run_example(inputs: list[Mapping[str, Any]]) -> str:
    arguments = []
    for field in inputs:
        if field["type"] == "enum":
            value = field["enum_values"][0]
        elif field["type"] == "string":
            value = f"example {field['name']}"
        else:
            value = _EXAMPLES[field["type"]]
        arguments.append(f"{field['name']}={_py(value)}")
    return f'if __name__ == "__main__":\n    result = agent.run({", ".join(arguments)})\n    print(result)\n'


# The schema's order (PostgreSQL's jsonb keeps its own), so the export is the same on every database.
_TOOL_KEY_ORDER = ("agent_id", "mcp_server", "tool", "description", "requires_approval")


def _py(value: Any) -> str:
    """A Python literal for plain data (what YAML and JSON hold), non-finite floats included."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_py(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_py(key)}: {_py(item)}" for key, item in value.items()) + "}"
    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)
    return repr(str(value))
