"""`run_start`, the one entry point of every run: it admits the draft under the organization's cap,
stores it, then awaits the run or launches it in the background, and tells `on_finished` how it
ended in both modes."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from observability.limits import RunLimitReached
from observability.models import Run
from observability.supervisor import RunDraft, RunFailed, RunOutcome, run_start
from tests.observability.factories import queued_run

pytestmark = pytest.mark.django_db(transaction=True)


def draft_of(member, **fields) -> RunDraft:
    return RunDraft(
        organization_id=member.organization_id, user_id=member.pk, kind="agent_test", input={"q": 1}, **fields
    )


async def answers(recorder, root_span_id) -> RunOutcome:
    return RunOutcome(output={"answer": recorder.run.input["q"]})


async def fails(recorder, root_span_id) -> RunOutcome:
    raise RuntimeError("boom")


async def test_awaited_the_run_is_stored_finished_and_reported(member):
    endings = []
    run, outcome = await run_start(draft_of(member), answers, name="inline", on_finished=endings.append)
    assert outcome.output == {"answer": 1}
    stored = await Run.objects.aget(pk=run.pk)
    assert (stored.status, stored.output, stored.user_id) == ("completed", {"answer": 1}, member.pk)
    assert endings == [None]

    with pytest.raises(RunFailed) as failed:
        await run_start(draft_of(member), fails, name="inline", on_finished=endings.append)
    assert endings[1] is failed.value and failed.value.code == "internal_error"
    assert (await Run.objects.aget(pk=failed.value.run.pk)).status == "failed"


async def test_in_the_background_the_stored_run_comes_back_at_once_and_ends_later(member):
    release = asyncio.Event()
    ended = asyncio.Event()
    endings = []

    async def waits(recorder, root_span_id) -> RunOutcome:
        await release.wait()
        return RunOutcome(output={"done": True})

    def on_finished(failure):
        endings.append(failure)
        ended.set()

    run, outcome = await run_start(
        draft_of(member, agent_id="agent-x"), waits, name="bg", background=True, on_finished=on_finished
    )
    assert outcome is None and run.status == "running"  # stored already started, with its root span
    stored = await Run.objects.aget(pk=run.pk)
    assert (stored.agent_id, stored.input, stored.status) == ("agent-x", {"q": 1}, "running")
    assert await stored.spans.filter(kind="run", parent__isnull=True).aexists()
    release.set()
    await asyncio.wait_for(ended.wait(), 10)
    assert endings == [None]
    assert (await Run.objects.aget(pk=run.pk)).status == "completed"


async def test_at_the_cap_neither_mode_stores_or_runs_anything(member, settings):
    settings.MAX_ACTIVE_RUNS_PER_ORG = 1
    await sync_to_async(queued_run)(organization_id=member.organization_id, input={})
    called = []

    async def work(recorder, root_span_id) -> RunOutcome:
        called.append(recorder.run.pk)
        return RunOutcome(output={})

    for background in (False, True):
        with pytest.raises(RunLimitReached):
            await run_start(draft_of(member), work, name="capped", background=background)
    await asyncio.sleep(0.1)  # a launched run would have begun by now
    assert called == []
    assert await Run.objects.acount() == 1
