import ast
import pathlib

from orchestrations.patterns import PATTERNS, pattern_list


def test_pattern_list_describes_the_nine_patterns_in_order():
    patterns = pattern_list()

    assert [p["id"] for p in patterns] == [
        "sequential",
        "parallel",
        "supervisor_worker",
        "router",
        "ensemble",
        "consensus",
        "debate",
        "handoff",
        "blackboard",
    ]
    assert {p["id"]: (p["min_agents"], p["max_agents"]) for p in patterns} == {
        "sequential": (2, 10),
        "parallel": (2, 20),
        "supervisor_worker": (2, 20),
        "router": (2, 10),
        "ensemble": (3, 10),
        "consensus": (3, 10),
        "debate": (3, 5),
        "handoff": (2, 5),
        "blackboard": (2, 10),
    }
    assert patterns[3]["roles"] == ["router", "specialist", "..."]
    assert all(p["name"] and p["description"] for p in patterns)


def test_roles_for_gives_the_role_of_each_position():
    assert PATTERNS["router"].roles_for(3) == ["router", "specialist", "specialist"]
    assert PATTERNS["ensemble"].roles_for(4) == ["expert", "expert", "expert", "synthesizer"]
    assert PATTERNS["debate"].roles_for(3) == ["debater", "debater", "judge"]
    assert PATTERNS["blackboard"].roles_for(2) == ["controller", "contributor"]


def test_the_engine_imports_no_django_drf_or_channels():
    package = pathlib.Path(__file__).parents[3] / "orchestrations" / "patterns"
    imported = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])

    assert not imported & {"django", "rest_framework", "channels"}
