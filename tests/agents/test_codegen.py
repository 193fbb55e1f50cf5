"""The Kaizen code export, checked for real: the exported module is executed against the installed
kailash-kaizen SDK, and its signature and agent are compared with the agent's config (no model is
called)."""

from __future__ import annotations

import ast
import typing

import pytest

from agents.codegen import (
    SIGNATURE_ATTRIBUTES,
    agent_kaizen_source,
    signature_class_name,
    source_file_name,
)
from agents.config_schema import validate_agent_config
from agents.models import Agent
from tests.agents.agent_configs import agent_config, agent_yaml
from tests.agents.factories import make_agent
from tests.providers.factories import make_provider_config

kaizen_signatures = pytest.importorskip("kaizen.signatures")
from kaizen.core.base_agent import BaseAgent  # noqa: E402
from kaizen.core.config import BaseAgentConfig  # noqa: E402

PYTHON_TYPES = {"string": str, "int": int, "float": float, "bool": bool, "array": list, "object": dict}
TOOL_ID = "agent-" + "a" * 32


def run_module(source: str) -> dict:
    """Executes exported source as its own module: not `__main__` (the run example stays unrun),
    and without this test module's `from __future__ import annotations`."""
    namespace: dict = {"__name__": "exported_agent"}
    exec(compile(source, "<export>", "exec", dont_inherit=True), namespace)
    return namespace


def exported(name: str, config: dict, *, base_url: str | None = None) -> tuple[str, dict]:
    agent = Agent(name=name, config=validate_agent_config(config), version="2.3.4")
    source = agent_kaizen_source(agent, base_url=base_url)
    return source, run_module(source)


def assert_reflects(namespace: dict, config: dict, *, base_url: str | None = None) -> None:
    """The executed module's signature, config and agent say what the normalized config says."""
    config = validate_agent_config(config)
    signature, settings, provider = config["signature"], config["config"], config["provider"]
    agent = namespace["agent"]
    assert isinstance(agent, BaseAgent)
    instance = agent.signature
    assert isinstance(instance, kaizen_signatures.Signature)
    assert instance.instructions == signature["system_prompt"].strip()
    assert list(instance.input_fields) == [field["name"] for field in signature["inputs"]]
    assert list(instance.output_fields) == [field["name"] for field in signature["outputs"]]
    assert instance.inputs == [field["name"] for field in signature["inputs"]]
    assert instance.outputs == [field["name"] for field in signature["outputs"]]
    for field in signature["inputs"]:
        kaizen_field = instance.input_fields[field["name"]]
        assert kaizen_field["type"] == expected_type(field)
        assert kaizen_field["desc"] == field["description"]
        assert kaizen_field["required"] is field["required"]
    for field in signature["outputs"]:
        kaizen_field = instance.output_fields[field["name"]]
        assert kaizen_field["type"] == expected_type(field)
        assert kaizen_field["desc"] == field["description"]

    kaizen_config = agent.config
    assert isinstance(kaizen_config, BaseAgentConfig)
    expected_provider = "openai" if provider["provider"] == "openai_compatible" else provider["provider"]
    assert kaizen_config.llm_provider == expected_provider
    assert kaizen_config.model == provider["model"]
    assert kaizen_config.temperature == settings["temperature"]
    assert kaizen_config.max_tokens == settings["max_tokens"]
    assert kaizen_config.budget_limit_usd == settings["budget_limit_usd"]
    assert kaizen_config.base_url == base_url
    if settings["strategy"] == "react":
        assert (kaizen_config.strategy_type, kaizen_config.max_cycles) == (
            "multi_cycle",
            settings["max_steps"],
        )
    elif settings["strategy"] == "self_reflection":
        assert (kaizen_config.strategy_type, kaizen_config.max_cycles) == (
            "multi_cycle",
            settings["max_cycles"],
        )
    else:
        assert kaizen_config.strategy_type == "single_shot"

    studio = namespace["STUDIO_SETTINGS"]
    assert {key: studio[key] for key in settings} == settings
    assert (studio["provider"], studio["provider_id"]) == (provider["provider"], provider["provider_id"])
    assert namespace.get("TOOLS", []) == [
        {"agent_id": tool["agent_id"], "description": tool["description"]} for tool in config["tools"]
    ]


def expected_type(field: dict):
    if field["type"] == "enum":
        return typing.Literal[tuple(field["enum_values"])]
    return PYTHON_TYPES[field["type"]]


def every_type() -> dict:
    config = agent_config()
    config["signature"] = {
        "system_prompt": "You triage support tickets.\n\nRules:\n- be kind\n- be brief",
        "inputs": [
            {"name": "ticket", "type": "string", "description": "The ticket text"},
            {"name": "attempts", "type": "int", "required": False},
            {"name": "score", "type": "float", "description": "Prior score"},
            {"name": "vip", "type": "bool"},
            {"name": "tier", "type": "enum", "enum_values": ["free", "pro"], "required": False},
            {"name": "history", "type": "array"},
            {"name": "customer", "type": "object"},
        ],
        "outputs": [
            {"name": "reply", "type": "string", "description": "What to send"},
            {"name": "priority", "type": "enum", "enum_values": ["low", "high", 'it\'s "urgent"']},
            {"name": "tags", "type": "array"},
            {"name": "confidence", "type": "float"},
        ],
    }
    return config


CONFIGS = {
    "every_field_type": every_type(),
    "openai_chain_of_thought_with_budget": agent_config(
        provider={"provider": "openai", "model": "gpt-4o-mini"},
        config={
            "strategy": "chain_of_thought",
            "temperature": 0.2,
            "max_tokens": 300,
            "budget_limit_usd": 5.5,
        },
    ),
    "anthropic_self_reflection": agent_config(
        provider={"provider": "anthropic", "model": "claude-3-5-haiku-latest"},
        config={"strategy": "self_reflection", "max_cycles": 3, "timeout_s": 12, "max_retries": 0},
    ),
    "react_with_tools": agent_config(
        provider={"provider": "openai_compatible", "model": "llama3"},
        config={"strategy": "react", "max_steps": 7},
        tools=[{"agent_id": TOOL_ID, "description": 'Looks up \'orders\' """ safely'}],
    ),
    "mock_with_a_script": agent_config(
        provider={"provider": "mock", "model": "mock-1", "responses": [{"response": "hi"}], "latency_ms": 5}
    ),
    "ollama_no_inputs": agent_config(
        provider={"provider": "ollama", "model": "llama3.2"},
        signature={"system_prompt": "", "inputs": [], "outputs": [{"name": "joke", "type": "string"}]},
    ),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_exported_module_reflects_the_config(name):
    base_url = "http://127.0.0.1:11434/v1" if name == "react_with_tools" else None
    source, namespace = exported("Support bot", CONFIGS[name], base_url=base_url)
    assert_reflects(namespace, CONFIGS[name], base_url=base_url)
    assert "class SupportBotSignature(Signature):" in source
    assert namespace["STUDIO_VERSION"] == "2.3.4"


TRICKY_PROMPTS = [
    'Say """hello""" and then \\n stop.',
    'Ends with a quote "',
    "Windows\r\nline endings\rand a lone CR",
    "Tabs\tand\n    an indented line",
    "  leading and trailing space  ",
    "Unicode: héllo 🎉 \u2028 separator",
    "'''single triple quotes''' and a \\ backslash",
    '"""\nimport os\nos.system(\'echo pwned\')\n"""',
]


@pytest.mark.parametrize("prompt", TRICKY_PROMPTS)
def test_tricky_prompts_stay_inside_their_literal(prompt):
    config = agent_config()
    config["signature"]["system_prompt"] = prompt
    config["signature"]["inputs"][0]["description"] = prompt
    _, namespace = exported("Bot", config)
    assert_reflects(namespace, config)
    assert namespace["BotSignature"].__doc__ == prompt  # exact, not only after kaizen strips it
    assert "os" not in namespace


def test_a_plain_multiline_prompt_is_a_real_docstring():
    config = agent_config()
    config["signature"]["system_prompt"] = "You help.\nBe brief."
    source, _ = exported("Bot", config)
    klass = next(node for node in ast.parse(source).body if isinstance(node, ast.ClassDef))
    assert ast.get_docstring(klass, clean=False) == "You help.\nBe brief."


@pytest.mark.parametrize(
    "name",
    ['Bot "quoted"', "Bot '''", 'Bot """ \\', "Bot\nimport os\n", "émoji 🎉 agent", "42 answers", "   "],
)
def test_tricky_agent_names_produce_valid_python(name):
    source, namespace = exported(name, agent_config())
    assert namespace["AGENT_NAME"] == name
    assert "os" not in namespace
    class_name = signature_class_name(name)
    assert class_name.isidentifier() and class_name in namespace
    assert_reflects(namespace, agent_config())


def test_class_names_come_from_the_agent_name():
    assert signature_class_name("support bot v2") == "SupportBotV2Signature"
    assert signature_class_name("émoji agent") == "EmojiAgentSignature"
    assert signature_class_name("42") == "Agent42Signature"
    assert signature_class_name("!!!") == "AgentSignature"
    assert source_file_name('Ticket "triage" v2!') == "ticket_triage_v2.py"
    assert source_file_name("🎉") == "agent.py"


def test_field_names_that_shadow_names_of_the_module_or_of_signature_still_work():
    config = agent_config()
    config["signature"]["inputs"] = [
        {"name": "str", "type": "string"},
        {"name": "inputs", "type": "int"},
        {"name": "InputField", "type": "array"},
        {"name": "instructions", "type": "string", "required": False},
    ]
    config["signature"]["outputs"] = [
        {"name": "Literal", "type": "enum", "enum_values": ["a", "b"]},
        {"name": "list", "type": "object"},
        {"name": "outputs", "type": "string"},
        {"name": "description", "type": "string"},
    ]
    _, namespace = exported("Bot", config)
    assert_reflects(namespace, config)


def test_the_shadowed_attribute_list_covers_kaizens_signature():
    public = {name for name in dir(kaizen_signatures.Signature) if not name.startswith(("__", "_signature_"))}
    assert public <= SIGNATURE_ATTRIBUTES


def test_the_run_example_passes_every_input_by_name():
    source, _ = exported("Bot", every_type())
    main = next(node for node in ast.parse(source).body if isinstance(node, ast.If))
    call = next(
        node
        for node in ast.walk(main)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "run"
    )
    assert [keyword.arg for keyword in call.keywords] == [
        field["name"] for field in every_type()["signature"]["inputs"]
    ]
    assert ast.literal_eval(call.keywords[4].value) == "free"


# --- the endpoint --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_code_endpoint_serves_python_that_runs_for_viewers(viewer_client, viewer):
    agent = make_agent(viewer.organization, name="Ticket triage", config_yaml=agent_yaml(every_type()))
    response = viewer_client.get(f"/api/agents/{agent.pk}/code")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/x-python; charset=utf-8"
    assert response["Content-Disposition"] == 'inline; filename="ticket_triage.py"'
    namespace = run_module(response.content.decode())
    assert_reflects(namespace, every_type())
    assert namespace["STUDIO_AGENT_ID"] == agent.pk


@pytest.mark.django_db
def test_code_endpoint_uses_the_base_url_of_the_agents_provider_config(auth_client, member):
    provider = make_provider_config(
        member.organization, provider="openai_compatible", api_base_url="https://llm.example.com/v1"
    )
    config = agent_config(
        provider={"provider": "openai_compatible", "model": "m", "provider_id": provider.pk}
    )
    agent = make_agent(member.organization, config_yaml=agent_yaml(config))
    source = auth_client.get(f"/api/agents/{agent.pk}/code").content.decode()
    assert run_module(source)["config"].base_url == "https://llm.example.com/v1"
    assert "test-key" not in source  # the key itself never leaves the server


@pytest.mark.django_db
def test_code_endpoint_errors_stay_json(auth_client):
    response = auth_client.get("/api/agents/agent-" + "0" * 32 + "/code", HTTP_ACCEPT="text/x-python")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not_found"
