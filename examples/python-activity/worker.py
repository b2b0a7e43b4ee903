"""A Temporal worker in Python serving an agentflow `activity` tool.

agentflow schedules the tool as the activity `weather` on the task queue `python-tools` with one
positional argument: the argument object, as JSON. The JSON the activity returns is the tool's
result. A non-retryable ApplicationError becomes a failed tool result the model reads.

    pip install temporalio
    TEMPORAL_ADDRESS=localhost:7233 python3 examples/python-activity/worker.py

and in agentflow.toml:

    [tools.weather]
    kind = "activity"
    description = "Current weather for a city."
    parameters = { type = "object", properties = { city = { type = "string" } }, required = ["city"] }
    activity_type = "weather"
    task_queue = "python-tools"
"""

import asyncio
import os

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker


@activity.defn(name="weather")
async def weather(args: dict) -> dict:
    city = args["city"]
    if city == "Atlantis":
        raise ApplicationError(f"no weather station in {city}", non_retryable=True)
    return {"city": city, "temp_c": 21, "sky": "clear"}


def record(what: str, tag: str) -> None:
    """Appends `what tag` to $RECORD_FILE, if set (the tests read it)."""
    path = os.environ.get("RECORD_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{what} {tag}\n")


@activity.defn(name="nap")
async def nap(args: dict) -> dict:
    """Sleeps `seconds`, heartbeating: a cancel from agentflow reaches it (declare the tool
    with `heartbeat_timeout_secs`)."""
    tag = args.get("tag", "")
    record("started", tag)
    try:
        for _ in range(int(args["seconds"] * 4)):
            activity.heartbeat()
            await asyncio.sleep(0.25)
    except asyncio.CancelledError:
        record("cancelled", tag)
        raise
    record("finished", tag)
    return {"slept": args["seconds"]}


@activity.defn(name="big")
async def big(args: dict) -> dict:
    """Answers `bytes` characters: past Temporal's payload limit the server refuses the
    result, and the call ends at its timeout."""
    return {"blob": "x" * int(args["bytes"])}


async def main() -> None:
    client = await Client.connect(os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"))
    queue = os.environ.get("TASK_QUEUE", "python-tools")
    worker = Worker(client, task_queue=queue, activities=[weather, nap, big])
    print(f"ready on {queue}", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
