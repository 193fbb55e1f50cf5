"""The shared base of the orchestration patterns (plain async Python: no Django, DRF or Channels).

A pattern module declares a `Pattern`: its metadata for GET /api/patterns, its config options and
an `execute(run)` coroutine that returns the output. `PatternRun` is what every pattern builds on:
step spans, agent calls (one, or several concurrently), `pattern.step` events, the totals of
tokens and cost, the cost cap and the `on_agent_error` policy.

Every step and agent call gets a key, its place in the run: the same on every execution of the run
given the same agent answers (steps are numbered in the order they open, which patterns keep
sequential; a call is keyed by its step, its agent's position and a digest of what it is asked,
never by when it finishes). A resumed run is answered its finished calls by key (see
`agents.runtime.runner.replaying`), so patterns must stay deterministic: no clocks, no randomness.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from agents.runtime.approvals import ApprovalRequest, approval_decide
from agents.runtime.runner import call_digest
from agents.runtime.types import AgentResult, AgentSpec, RunAgent
from agents.runtime.validation import Errors, Key
from providers.llm.types import Recorder
from studio.errors import CodedError, WorkDeclined, WorkPaused, internal_error, paused_in

Output = dict[str, Any]


class OrchestrationError(CodedError):
    """An orchestration that failed as a whole (a timeout, its cost cap, every agent failing, a
    decision it cannot act on), as opposed to one of its agents failing (an AgentError)."""

    def __init__(
        self, code: str, message: str, *, status: int = 400, fields: Mapping[str, Any] | None = None
    ):
        super().__init__(message, code=code, status=status, fields=fields)


@dataclass(frozen=True)
class PatternContext:
    """What a pattern runs with: the agents in the orchestration's order, its config, the run's
    inputs, how to run one agent, and where spans and events go."""

    agents: tuple[AgentSpec, ...]
    config: Mapping[str, Any]
    inputs: Mapping[str, Any]
    run_agent: RunAgent
    recorder: Recorder
    parent_span_id: str | None = None


@dataclass(frozen=True)
class PatternResult:
    output: Output
    agents_executed: list[str]  # agent ids, in the order their calls started
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)


@dataclass(frozen=True)
class Pattern:
    """A pattern as the registry lists it. In `roles`, "..." repeats the role before it to fill the
    agent count: router ("router", "specialist", "...") -> router, specialist, specialist."""

    id: str
    name: str
    description: str
    min_agents: int
    max_agents: int
    roles: tuple[str, ...]
    execute: Callable[[PatternRun], Awaitable[Output]]
    options: Mapping[str, Key] = field(default_factory=dict)
    # Checks across options (and against the agent count) once each option is valid.
    check: Callable[[Mapping[str, Any], int], Errors] | None = None
    # The input fields callers give, for a pattern that does not hand the inputs to its first agent
    # as they are (it fills that agent's first input with a brief of its own, or maps them).
    caller_inputs: Callable[[Sequence[AgentSpec], Mapping[str, Any]], list[Mapping[str, Any]]] | None = None

    def input_fields_for(
        self, agents: Sequence[AgentSpec], config: Mapping[str, Any]
    ) -> list[Mapping[str, Any]]:
        """The input fields of an orchestration of this pattern: by default its first agent's."""
        if self.caller_inputs is not None:
            return self.caller_inputs(agents, config)
        return input_fields(agents[0])

    def roles_for(self, agent_count: int) -> list[str]:
        """The role of each position when the orchestration has `agent_count` agents."""
        gap = self.roles.index("...")
        lead, tail = self.roles[:gap], self.roles[gap + 1 :]
        return [*lead, *[lead[-1]] * (agent_count - len(lead) - len(tail)), *tail]

    def describe(self) -> dict[str, Any]:
        """The entry of GET /api/patterns."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "min_agents": self.min_agents,
            "max_agents": self.max_agents,
            "roles": list(self.roles),
        }


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)

    def add(self, result: AgentResult) -> None:
        self.input_tokens += result.input_tokens
        self.output_tokens += result.output_tokens
        self.cost_usd += result.cost_usd


@dataclass
class Step:
    """One step of a pattern: a `pattern` span, parent of the agent calls made within it."""

    span_id: str
    key: str = ""  # its place in the run: "<n>.<name>", n counting the steps opened
    usage: Usage = field(default_factory=Usage)
    # What the step learnt that its span should keep (e.g. the answer that made it fail).
    attributes: dict[str, Any] = field(default_factory=dict)


class PatternRun:
    """One execution of a pattern: calls agents within step spans, keeps the totals and the agents
    executed, enforces the cost cap and applies the `on_agent_error` policy."""

    def __init__(
        self, pattern_id: str, ctx: PatternContext, config: Mapping[str, Any], roles: Sequence[str] = ()
    ):
        self.pattern_id = pattern_id
        self.roles = tuple(roles)
        self.ctx = ctx
        self.config = config
        self.agents = ctx.agents
        self.inputs = ctx.inputs
        self.names = unique_names(ctx.agents)
        self.errors: dict[str, str] = {}
        self._usage = Usage()
        self._executed: list[str] = []
        self._steps_opened = 0
        self._calls_asked: Counter[str] = Counter()  # calls per key prefix, to number repeats
        cap = config["max_total_cost_usd"]
        self._cost_cap = None if cap is None else Decimal(str(cap))

    @asynccontextmanager
    async def step(self, name: str, **attributes: Any) -> AsyncIterator[Step]:
        """Open a `pattern` span named `<pattern>.<name>` under the run's span for one step."""
        recorder = self.ctx.recorder
        self._steps_opened += 1
        key = f"{self._steps_opened}.{name}"
        span_id = await recorder.span_open(
            kind="pattern",
            name=f"{self.pattern_id}.{name}",
            parent_id=self.ctx.parent_span_id,
            attributes=attributes,
            key=key,
        )
        step = Step(span_id, key)
        status, error = "failed", None
        try:
            yield step
            status = "completed"
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except WorkPaused:
            status = "waiting"  # the resumed run enters the step again
            raise
        except CodedError as exc:
            error = exc.message
            raise
        except Exception as exc:  # a fault in the pattern itself: no detail leaves the server log
            unexpected = internal_error(exc, what="The orchestration step")
            error = unexpected.message
            raise unexpected from exc
        finally:
            await recorder.span_close(
                span_id,
                status=status,
                error=error,
                input_tokens=step.usage.input_tokens,
                output_tokens=step.usage.output_tokens,
                cost_usd=step.usage.cost_usd,
                attributes=step.attributes,
            )

    async def call(
        self,
        step: Step,
        position: int,
        inputs: Mapping[str, Any],
        *,
        instructions: str = "",
        extra_outputs: Sequence[Mapping[str, Any]] = (),
        essential: bool = False,
    ) -> Output | None:
        """Run the agent at `position` within `step` and return its output. A failure raises, unless
        on_agent_error is `continue` and the call is not essential: then it goes to `errors`."""
        self._check_cost()
        spec = self.agents[position]
        if instructions or extra_outputs:
            spec = spec.with_role(instructions, undeclared_outputs(spec, extra_outputs))
        self._executed.append(spec.agent_id)
        key = self._call_key(step, position, spec, inputs)
        try:
            result = await self.ctx.run_agent(spec, inputs, step.span_id, key=key)
        except WorkPaused:
            raise
        except Exception as exc:
            if paused_in(exc) is not None or essential or self.config["on_agent_error"] == "fail":
                raise
            error = exc if isinstance(exc, CodedError) else internal_error(exc, what="The agent")
            self.errors[self.names[position]] = error.message
            return None
        self._usage.add(result)
        step.usage.add(result)
        self._check_cost()
        if self._approval_after(position):
            await self._approved(step, position, key, result.output)
        return dict(result.output)

    def _approval_after(self, position: int) -> bool:
        approval = self.config.get("approval")
        if not approval:
            return False
        after = approval["after"]
        if isinstance(after, int):
            return after == position
        return position < len(self.roles) and self.roles[position] == after

    async def _approved(self, step: Step, position: int, key: str, output: Mapping[str, Any]) -> None:
        """Returns once a person approved the output of this call (WorkPaused until someone
        decides); a rejection, or an expiry under `on_timeout: reject`, ends the run cancelled."""
        approval = self.config["approval"]
        spec = self.agents[position]
        subject = {
            "pattern": self.pattern_id,
            "step": step.key,
            "position": position,
            "agent": self.names[position],
            "agent_id": spec.agent_id,
            "output": dict(output),
        }
        request = ApprovalRequest(
            key=f"approval:{key}",
            kind="step",
            subject=subject,
            timeout_s=approval["timeout_s"],
            on_timeout=approval["on_timeout"],
        )
        decision = await approval_decide(self.ctx.recorder, request)
        if decision.approved:
            return
        how = "rejected" if decision.status == "rejected" else "not approved in time"
        reason = f"The output of {self.names[position]!r} was {how}" + (
            f": {decision.comment}" if decision.comment else "."
        )
        raise WorkDeclined(reason, fields={"approval_id": decision.approval_id})

    async def call_all(
        self, calls: Iterable[Coroutine[Any, Any, Output | None]], *, limit: int | None = None
    ) -> list[Output | None]:
        """Await independent agent calls concurrently (at most `limit` at once). A failure that is
        not tolerated cancels the calls still running and is raised; so is every call failing."""
        calls = list(calls)
        if limit:
            slots = asyncio.Semaphore(limit)
            calls = [_limited(slots, call) for call in calls]
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(call) for call in calls]
        except BaseExceptionGroup as failures:
            raise paused_in(failures) or _first_failure(failures) from None
        outputs = [task.result() for task in tasks]
        if outputs and all(output is None for output in outputs):
            raise OrchestrationError(
                "all_agents_failed",
                "Every agent of this step failed.",
                status=502,
                fields={"errors": dict(self.errors)},
            )
        return outputs

    def by_name(self, positions: Iterable[int], outputs: Iterable[Output | None]) -> dict[str, Output]:
        """Outputs keyed by agent name, leaving out the calls that failed."""
        pairs = zip(positions, outputs, strict=True)
        return {self.names[position]: output for position, output in pairs if output is not None}

    def roster(self, positions: Iterable[int]) -> str:
        """The agents at `positions` as a list of `- name: description` lines for role prompts."""
        return "\n".join(
            f"- {self.names[p]}: {self.agents[p].description or '(no description)'}" for p in positions
        )

    async def emit_step(self, step: str, **data: Any) -> None:
        """Emit a `pattern.step` event saying what the pattern did or decided."""
        await self.ctx.recorder.emit("pattern.step", data={"pattern": self.pattern_id, "step": step, **data})

    def result(self, output: Output) -> PatternResult:
        if self.errors:
            output = {**output, "errors": dict(self.errors)}
        return PatternResult(
            output=output,
            agents_executed=list(self._executed),
            input_tokens=self._usage.input_tokens,
            output_tokens=self._usage.output_tokens,
            cost_usd=self._usage.cost_usd,
        )

    def _call_key(self, step: Step, position: int, spec: AgentSpec, inputs: Mapping[str, Any]) -> str:
        """`<step key>/<position>:<digest>#<n>`; n tells apart calls asked the very same thing in one
        step (interchangeable, so the order they are numbered in does not matter)."""
        prefix = f"{step.key}/{position}:{call_digest(spec, inputs)}"
        n = self._calls_asked[prefix]
        self._calls_asked[prefix] += 1
        return f"{prefix}#{n}"

    def _check_cost(self) -> None:
        if self._cost_cap is not None and self._usage.cost_usd > self._cost_cap:
            raise OrchestrationError(
                "cost_limit_exceeded",
                f"The orchestration spent ${self._usage.cost_usd}, over its limit of ${self._cost_cap}.",
                status=402,
            )


async def _limited(slots: asyncio.Semaphore, call: Coroutine[Any, Any, Output | None]) -> Output | None:
    try:
        async with slots:
            return await call
    finally:
        call.close()  # a call cancelled while waiting for a slot never started: no "never awaited"


def _first_failure(failures: BaseExceptionGroup) -> BaseException:
    first = failures.exceptions[0]
    return _first_failure(first) if isinstance(first, BaseExceptionGroup) else first


def unique_names(agents: Sequence[AgentSpec]) -> tuple[str, ...]:
    """Agent names made unique by position ("Writer", "Writer (2)"), to key outputs by name."""
    names: list[str] = []
    for spec in agents:
        name, n = spec.name, 1
        while name in names:
            n += 1
            name = f"{spec.name} ({n})"
        names.append(name)
    return tuple(names)


def input_fields(spec: AgentSpec) -> list[Mapping[str, Any]]:
    return list(spec.config.get("signature", {}).get("inputs", ()))


def output_fields(spec: AgentSpec) -> list[Mapping[str, Any]]:
    return list(spec.config.get("signature", {}).get("outputs", ()))


def undeclared_outputs(spec: AgentSpec, extra: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The extra output fields the agent's signature does not already declare."""
    declared = {f["name"] for f in output_fields(spec)}
    return [f for f in extra if f["name"] not in declared]


def inputs_after_the_brief(agents: Sequence[AgentSpec], config: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The caller's input fields of a pattern whose first agent gets a brief in its first input
    (`inputs_with_brief`): that agent's other inputs, which come from the caller by name."""
    return input_fields(agents[0])[1:]


def inputs_from(spec: AgentSpec, upstream: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs for `spec` from an upstream dict: its fields by name, else the whole upstream in its
    first input."""
    fields = input_fields(spec)
    if not fields:
        return dict(upstream)
    matched = {f["name"]: upstream[f["name"]] for f in fields if f["name"] in upstream}
    return matched or inputs_with_brief(spec, upstream, {})


def inputs_with_brief(spec: AgentSpec, brief: Any, context: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs for `spec` with `brief` (what this step gives it to work on) in its first input and its
    other inputs by name from `context`."""
    fields = input_fields(spec)
    if not fields:
        return {"input": brief}
    first, rest = fields[0], fields[1:]
    value = brief if first.get("type") in ("object", "array") else as_text(brief)
    return {first["name"]: value} | {f["name"]: context[f["name"]] for f in rest if f["name"] in context}


def as_text(value: Any) -> str:
    """A value as prompt text: strings as they are, a one-field text output as its text, else JSON."""
    if isinstance(value, Mapping) and len(value) == 1:
        (only,) = value.values()
        if isinstance(only, str):
            return only
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)
