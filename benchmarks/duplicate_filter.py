"""Benchmark: how well the duplicate filters catch a paraphrase of an earlier instruction, and
how many distinct instructions they wrongly refuse.

    .venv/bin/python benchmarks/duplicate_filter.py [--thresholds 0.6,0.7,0.8] [--tfidf-thresholds 0.5,0.8]

Data (below, written for this benchmark): 40 instructions of the kinds the synthetic API makes
(interactive pages, everyday texts, conversations, pictures), each with a paraphrase of it as an
LLM would write one (reworded, reordered, the same task); 40 more distinct instructions, 20 of
them "near misses" (the same kind of task as another but asking for other things).

For each filter: a fresh task database; the 80 distinct instructions go through the filter one
after another (a refusal here is a **false refusal**); then each paraphrase goes through it
(a refusal here is a **paraphrase caught**). Filters:

- ``tfidf@t``: :class:`dojo.synthetic.filter.InstructionFilter` at threshold ``t`` (0.8 is its
  default), the offline backend's;
- ``embedding@t``: :class:`dojo.synthetic.llm_kinds.EmbeddingFilter` at threshold ``t``, asking a
  real OpenAI-compatible ``/embeddings`` endpoint over HTTP on loopback, served here by a
  WordLlama model (``wordllama``, weights shipped inside the package: 256-dimensional static
  token embeddings distilled from Llama 2), the production path with a small local model
  standing in for the provider's. ``--url``/``--model`` point it at another endpoint (the
  provider's), to choose ``--semantic-similarity`` for the model a validator will use.

The last printed line is one JSON object.
"""

from __future__ import annotations

# ruff: noqa: E402
import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import json

from aiohttp import web
from loguru import logger

from dojo.synthetic.filter import InstructionFilter
from dojo.synthetic.llm import ChatClient, LLMSettings
from dojo.synthetic.llm_kinds import EmbeddingFilter
from dojo.synthetic.store import SyntheticStore

PAIRS = [
    (
        "Create an interactive web page with a particle system: 200 small white dots drift upward and the mouse repels them.",
        "Build a browser page where two hundred tiny white particles float up the screen and get pushed away by the cursor.",
    ),
    (
        "Make an analogue clock in HTML, CSS and JavaScript with a red second hand that ticks every second.",
        "Write a ticking analog clock for the browser; its second hand is red and jumps once per second.",
    ),
    (
        "Write a memory card game with 16 cards showing fruit emoji; matched pairs stay face up.",
        "Code a concentration game of sixteen cards with fruit emojis where found pairs remain turned over.",
    ),
    (
        "Draw a fractal tree on a canvas whose branching angle follows a slider from 10 to 60 degrees.",
        "Render a recursive tree on an HTML canvas; a slider between 10 and 60 degrees sets the angle between branches.",
    ),
    (
        "Visualise bubble sort on 30 vertical bars, highlighting the two bars being compared in orange.",
        "Show bubble sort step by step over thirty bars, with the pair under comparison coloured orange.",
    ),
    (
        "Build a snake game on a 20 by 20 grid; the snake speeds up each time it eats.",
        "Implement Snake on a twenty-by-twenty board where every piece of food makes the snake faster.",
    ),
    (
        "Simulate a pendulum wave of 15 pendulums with slightly different lengths, drawn in blue.",
        "Animate fifteen blue pendulums of gradually changing length swinging as a pendulum wave.",
    ),
    (
        "Create a typing speed test that shows words per minute and accuracy after 60 seconds.",
        "Make a one-minute typing test page that reports WPM and accuracy when time is up.",
    ),
    (
        "Write a solar system model where eight planets orbit the sun at speeds proportional to real periods.",
        "Make an orbit animation of the eight planets circling the sun, each at a speed matching its real year.",
    ),
    (
        "Build a pixel art editor with a 32 by 32 grid, a colour palette and an eraser.",
        "Code a 32x32 pixel drawing tool with a palette of colours and an erase mode.",
    ),
    (
        "Write a short email to the design team inviting them to the workshop on Thursday at 2 pm in Room 4B.",
        "Draft an invitation email for the design team: the workshop is Thursday, 2 pm, in Room 4B.",
    ),
    (
        "Explain to a beginner cook how to make banana bread, baking it at 180°C for 45 minutes.",
        "Write beginner-friendly banana bread instructions; it bakes 45 minutes at 180°C.",
    ),
    (
        "Write the support team's reply to Ms Tanaka: her refund of $42.00 for order #51977 is on its way.",
        "Draft a customer service answer telling Ms Tanaka that order #51977 will be refunded $42.00.",
    ),
    (
        "Send my sister the plan for our Lisbon trip: flight LX 318 at 8:05 am, then the boat trip and the market.",
        "Write my sister our Lisbon itinerary: we fly LX 318 at 8:05 am, do the boat trip, then the market.",
    ),
    (
        "Summarise the warehouse app project for the board: 70% done, deadline July 9, $5,750 left.",
        "Write the board a status update on the warehouse app: 70 percent complete, due July 9, $5,750 remaining.",
    ),
    (
        "Put together a home workout for my father: squats, push-ups and planks, 3 sets of 10 reps each.",
        "Make my dad a home exercise routine of squats, push-ups and planks, three sets of ten repetitions.",
    ),
    (
        "Write a packing list for a week of camping in the mountains in autumn.",
        "List what to pack for seven days of autumn camping in the mountains.",
    ),
    (
        "Write a cover letter for a junior data analyst position at a logistics company.",
        "Draft a cover letter applying for an entry-level data analyst job at a logistics firm.",
    ),
    (
        "Describe a two-bedroom apartment for rent near the river, €1,200 a month, available from May.",
        "Write a rental listing for a 2-bedroom flat by the river at €1,200 per month, free from May.",
    ),
    (
        "Write meeting minutes for the school board: the new library hours and the budget for sports equipment.",
        "Take minutes of the school board meeting covering new library opening hours and the sports equipment budget.",
    ),
    (
        "User: My meeting moved to Thursday. Can you write a note to my team? Assistant: Sure, which room? User: Room 12.",
        "User: Please write my team a note, the meeting is now on Thursday. Assistant: Which room? User: It's Room 12.",
    ),
    (
        "User: I need a birthday message for my grandmother who turns 90. Keep it warm and short.",
        "User: Write a short, warm birthday note for my grandma's 90th birthday.",
    ),
    (
        "User: Help me apologise to a customer whose package arrived broken; offer a replacement.",
        "User: Write an apology to a customer who got a damaged parcel and offer to send a new one.",
    ),
    (
        "User: Plan a vegetarian dinner for six people with a starter, a main course and a dessert.",
        "User: I'm hosting six people; suggest a vegetarian three-course dinner: starter, main and dessert.",
    ),
    (
        "User: Explain to my 10-year-old why the sky is blue, in three sentences.",
        "User: In three sentences, tell my ten-year-old why the sky looks blue.",
    ),
    (
        "User: Write a polite reminder to a tenant that rent is five days late.",
        "User: Draft a courteous note reminding my tenant the rent is overdue by five days.",
    ),
    (
        "User: Give me a two-day itinerary for Kyoto focused on temples and gardens.",
        "User: Plan two days in Kyoto for me, mostly temples and gardens.",
    ),
    (
        "User: Turn these notes into a short product announcement: new blue kettle, 1.7 litres, ships in March.",
        "User: Write a brief announcement for our new blue kettle, 1.7 L capacity, shipping from March.",
    ),
    (
        "User: Write a thank-you note to the volunteers who cleaned the park on Saturday.",
        "User: Draft a message thanking the volunteers for Saturday's park clean-up.",
    ),
    (
        "User: Help me ask my manager for Friday off to attend my brother's graduation.",
        "User: Write a request to my boss for a day off on Friday for my brother's graduation ceremony.",
    ),
    (
        "A picture of three red circles in the top left and two blue squares in the bottom right, on a white background.",
        "An image with two blue squares at the lower right and three red circles at the upper left, white background.",
    ),
    (
        "Draw five yellow stars in the top-right corner and one green triangle in the bottom left, on a cream background.",
        "A cream background with a single green triangle in the bottom left and five yellow stars top right.",
    ),
    (
        "A watercolour of a lighthouse on a cliff at sunset, with seagulls in the sky.",
        "Paint a sunset lighthouse on a clifftop in watercolour, gulls flying overhead.",
    ),
    (
        "A photo of a bowl of ramen with a soft-boiled egg and green onions, seen from above.",
        "Top-down photograph of ramen topped with a jammy egg and spring onions.",
    ),
    (
        "An isometric illustration of a tiny cosy library with a cat sleeping on the desk.",
        "Isometric drawing of a small, cosy library room where a cat naps on the desk.",
    ),
    (
        "A flat icon of a bicycle in orange on a dark blue background.",
        "Orange bicycle icon, flat style, on a navy background.",
    ),
    (
        "A pencil sketch of an old man reading a newspaper on a park bench.",
        "Pencil drawing: an elderly man on a park bench reading the paper.",
    ),
    (
        "A red fox standing in fresh snow in a pine forest, early morning light.",
        "Early morning in a snowy pine forest with a red fox standing in the snow.",
    ),
    (
        "A poster for a jazz festival in July with a saxophone and bold retro lettering.",
        "Retro-style jazz festival poster for July featuring a saxophone and bold type.",
    ),
    (
        "Six purple squares in a row across the middle of the picture on a light grey background.",
        "On light grey, a horizontal row of six purple squares through the centre of the image.",
    ),
]

# Distinct tasks; the first 20 are near misses of tasks above (same kind of task, other asks).
DISTINCT = [
    "Create an interactive page where 50 large red bubbles fall down and pop when clicked.",
    "Make a digital clock that shows the time in three cities side by side.",
    "Write a memory game where the player repeats a growing sequence of coloured pads.",
    "Draw a Sierpinski triangle on a canvas, deepening one level per click.",
    "Visualise quicksort on 50 bars, colouring the pivot green.",
    "Build a Pong game for two players on one keyboard.",
    "Simulate a double pendulum and trace the path of its end in yellow.",
    "Write a reaction-time test that measures how fast the user clicks when the screen turns green.",
    "Make a model of the Moon's phases as it orbits the Earth.",
    "Build a drawing app with brush sizes and an undo button.",
    "Write an email to the finance team asking for receipts by Friday.",
    "Explain how to make a lemon cake for a school bake sale.",
    "Write a support reply explaining how to reset a forgotten password.",
    "Send my colleague the agenda for our Montreal conference trip.",
    "Write the weekly update on the billing migration for the client.",
    "Make a stretching routine for office workers, ten minutes long.",
    "A picture of four green triangles in the top right on a pale blue background.",
    "A watercolour of a harbour with fishing boats at dawn.",
    "User: Write a farewell message for a colleague who is retiring after 30 years.",
    "User: Suggest a weekend itinerary in Edinburgh for a family with small children.",
    "Write a haiku sequence about the four seasons.",
    "Create a weather dashboard with mock data for five cities and a temperature chart.",
    "Build a maze generator and solver that animates the search.",
    "Write a short story opening set on a night train through the Alps.",
    "Explain compound interest with a worked example for a teenager.",
    "Draft the terms for a neighbourhood tool-lending library.",
    "User: Help me write a complaint about a noisy construction site next to my flat.",
    "User: What should I say in a toast at my best friend's wedding? Keep it under a minute.",
    "Make an interactive bar chart of monthly rainfall that sorts on click.",
    "Write a press release announcing a new public swimming pool opening in June.",
    "A black and white photograph of a rainy city street at night with neon signs.",
    "A cartoon of a robot watering plants on a balcony.",
    "An oil painting of a vase of sunflowers on a wooden table.",
    "Design a flyer for a beginners' chess club that meets on Wednesdays.",
    "Write instructions for assembling a simple bookshelf with four shelves.",
    "User: My flight was cancelled; help me write to the airline asking for a refund.",
    "Build a colour palette generator that locks colours with a click and copies hex codes.",
    "Create a typing game where falling words must be typed before they hit the ground.",
    "Write a guide to repotting a houseplant in five steps.",
    "Make a fireworks animation that launches a rocket wherever the user clicks.",
]


def embedding_server():
    """An OpenAI-compatible /v1/embeddings endpoint backed by WordLlama's bundled model."""
    import wordllama
    from wordllama import WordLlama

    model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        vectors = model.embed(list(body["input"]), norm=True)
        return web.json_response(
            {
                "data": [{"index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)],
                "model": body["model"],
            }
        )

    app = web.Application()
    app.router.add_post("/v1/embeddings", embeddings)
    return app


async def measure(make) -> dict:
    store = SyntheticStore()
    f = await make(store)
    false = [text for text in DISTINCT + [a for a, _ in PAIRS] if not (await f.decide(text)).accepted]
    caught = [b for _, b in PAIRS if not (await f.decide(b)).accepted]
    store.close()
    n_distinct = len(DISTINCT) + len(PAIRS)
    return {
        "paraphrases": len(PAIRS),
        "paraphrases_caught": len(caught),
        "share_caught": round(len(caught) / len(PAIRS), 3),
        "distinct": n_distinct,
        "distinct_refused": len(false),
        "share_wrongly_refused": round(len(false) / n_distinct, 3),
        "wrongly_refused_examples": false[:3],
    }


async def run(
    thresholds: list[float], tfidf_thresholds: list[float], url: str | None, model: str, key: str | None
) -> dict:
    runner = None
    if url is None:
        runner = web.AppRunner(embedding_server())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    chat = ChatClient(LLMSettings(base_url=url, api_key=key, models=["none"], max_retries=1, backoff=0.0))
    results = {}
    try:
        for t in tfidf_thresholds:

            async def tfidf(store, t=t):
                return _Sync(InstructionFilter(store, t, kind="any"))

            results[f"tfidf@{t:g}"] = await measure(tfidf)
        for t in thresholds:

            async def emb(store, t=t):
                return EmbeddingFilter(store, t, kind="any", chat=chat, model=model)

            results[f"embedding@{t:g}"] = await measure(emb)
    finally:
        await chat.aclose()
        if runner is not None:
            await runner.cleanup()
    return results


class _Sync:
    def __init__(self, f: InstructionFilter) -> None:
        self.f = f

    async def decide(self, text: str):
        return self.f.check(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", default="0.6,0.65,0.7,0.75,0.8,0.85,0.9", help="embedding thresholds")
    parser.add_argument(
        "--tfidf-thresholds", default="0.5,0.6,0.7,0.8", help="TF-IDF thresholds (0.8: the default)"
    )
    parser.add_argument(
        "--url",
        default=None,
        help="another OpenAI-compatible base URL to calibrate (its /embeddings); "
        "default: WordLlama served here",
    )
    parser.add_argument("--model", default="wordllama-l2-supercat-256", help="the embedding model at --url")
    parser.add_argument(
        "--key-env", default="SYNTHETIC_LLM_API_KEY", help="variable holding the key for --url"
    )
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    thresholds = [float(t) for t in args.thresholds.split(",") if t]
    import os

    results = asyncio.run(
        run(
            thresholds,
            [float(t) for t in args.tfidf_thresholds.split(",") if t],
            args.url,
            args.model,
            os.environ.get(args.key_env) or None,
        )
    )
    for name, r in results.items():
        print(
            f"{name:16s} caught {r['paraphrases_caught']:2d}/{r['paraphrases']} paraphrases "
            f"({r['share_caught']:.0%}), wrongly refused {r['distinct_refused']:2d}/{r['distinct']} distinct "
            f"({r['share_wrongly_refused']:.0%})"
        )
    print(json.dumps({"benchmark": "duplicate_filter", "filters": results}))


if __name__ == "__main__":
    main()
