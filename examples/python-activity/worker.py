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


async def main() -> None:
    client = await Client.connect(os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"))
    queue = os.environ.get("TASK_QUEUE", "python-tools")
    worker = Worker(client, task_queue=queue, activities=[weather])
    print(f"ready on {queue}", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
