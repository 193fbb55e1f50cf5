"""The entry point of the pattern engine: run one orchestration's agents with its pattern."""

from __future__ import annotations

import asyncio

from orchestrations.patterns.base import OrchestrationError, PatternContext, PatternResult, PatternRun
from orchestrations.patterns.config import validate_pattern_config
from orchestrations.patterns.registry import PATTERNS


async def run_pattern(pattern_id: str, ctx: PatternContext) -> PatternResult:
    """Run `ctx.agents` with the pattern `pattern_id` (ctx.config is validated first: ConfigError),
    within its timeout and cost cap. Cancelling the calling task cancels every agent call in flight."""
    config = validate_pattern_config(pattern_id, ctx.config, agent_count=len(ctx.agents))
    pattern = PATTERNS[pattern_id]
    run = PatternRun(pattern_id, ctx, config, roles=pattern.roles_for(len(ctx.agents)))
    deadline = asyncio.timeout(config["timeout_s"])
    try:
        async with deadline:
            output = await pattern.execute(run)
    except TimeoutError:
        if not deadline.expired():
            raise  # an agent's own timeout, not the orchestration's
        message = f"The orchestration did not finish within {config['timeout_s']} s."
        raise OrchestrationError("orchestration_timeout", message, status=504) from None
    return run.result(output)
