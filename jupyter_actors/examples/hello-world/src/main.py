"""The example actor: reads INPUT, logs, pushes rows to the default dataset and sets OUTPUT."""

from apify import Actor


async def main() -> None:
    async with Actor:
        actor_input = await Actor.get_input() or {}
        name = actor_input.get("name", "world")
        count = int(actor_input.get("count", 3))
        Actor.log.info("Hello, %s!", name)
        await Actor.push_data([{"index": i, "square": i * i, "greeting": f"Hello #{i}, {name}"} for i in range(count)])
        await Actor.set_value("OUTPUT", {"message": f"Hello, {name}!", "rows": count})
