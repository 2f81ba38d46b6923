"""The procedural grammar of text and dialogue tasks: scenarios, instructions, responses.

Each :class:`TextScenario` is an everyday writing job (an invitation, a recipe, a support reply,
an itinerary, a status update, a training plan) with slots for facts and a pool of steps.
:func:`sample_task` fills it: every fact gets a value and a decoy from the slot's pool, both
written into the instruction (the date it moved from, the room under renovation), so that a
response stating the decoy contradicts the prompt with words the prompt itself contains.

:func:`render_response` writes one response from a :class:`~dojo.synthetic.textspec.Plan`:
a greeting, one sentence per fact, one sentence walking through the steps in the plan's
order, a closing. Each sentence is drawn from several equivalent phrasings for every
response separately, so responses of one task read as different answers whose length and
wording vary for reasons that have nothing to do with their defects.

For dialogue the same facts and steps are spread over a conversation: the user asks, the
assistant asks back, the user adds the rest and corrects something said earlier; the
responses are the assistant's last turn.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from dojo.synthetic.textspec import Fact, Plan, TextKind, TextSpec


@dataclass(frozen=True)
class Slot:
    """A fact's pool of values, how the prompt states it (with ``{v}`` the value and ``{d}``
    the decoy) and how a response states it (``{v}``)."""

    key: str
    pool: tuple[str, ...]
    prompt: tuple[str, ...]
    reply: tuple[str, ...]
    correction: tuple[str, ...] = ()  # dialogue: the user corrects an earlier {d} to {v}
    sign_off: bool = False  # the reply's sentence closes the message, on a line of its own


@dataclass(frozen=True)
class TextScenario:
    name: str
    # What is asked for: {topic} is drawn from topics, {who} from audiences ("who|name in the
    # greeting", when the greeting calls them otherwise).
    asks: tuple[str, ...]
    topics: tuple[str, ...]
    audiences: tuple[str, ...]
    slots: tuple[Slot, ...]
    steps: tuple[str, ...]
    ordered_steps: bool  # True: steps keep the pool's order (a recipe), else any order
    step_prompt: tuple[str, ...]  # {steps}: the steps listed in the required order
    step_reply: tuple[str, ...]  # {first}, {middle}, {last}: the plan's steps
    openings: tuple[str, ...]
    closings: tuple[str, ...]
    greetings: tuple[str, ...] = ("",)


_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_NAMES = (
    "Maria",
    "Jonas",
    "Aiko",
    "Priya",
    "Tomás",
    "Grace",
    "Omar",
    "Lena",
    "Kwame",
    "Sofia",
    "Ravi",
    "Ines",
)

SCENARIOS: tuple[TextScenario, ...] = (
    TextScenario(
        name="invitation",
        asks=(
            "Write a short email to {who} inviting them to the {topic}.",
            "Draft an invitation email for {who} about the {topic}.",
            "Please write the email that tells {who} about the {topic}.",
        ),
        topics=(
            "workshop",
            "team offsite",
            "open day",
            "planning session",
            "volunteer day",
            "spring retreat",
        ),
        audiences=(
            "the design team|design team",
            "the support team|support team",
            "the volunteers|everyone",
            "the new interns|all",
            "the finance team|finance team",
            "the chess club|chess club",
            "the lab group|all",
            "the choir|singers",
        ),
        slots=(
            Slot(
                "day",
                _DAYS,
                (
                    "It was first planned for {d} but has moved to {v}.",
                    "It is on {v}, not {d} as the old note said.",
                ),
                ("It will take place on {v}.", "We are meeting on {v}.", "Please keep {v} free for it."),
                ("Oh, and the day changed: not {d} any more, it is {v} now.",),
            ),
            Slot(
                "start",
                ("9:30 am", "10:15 am", "11 am", "1:30 pm", "2 pm", "3:45 pm", "4:30 pm"),
                (
                    "It starts at {v}; ignore the {d} start in last month's message.",
                    "Start time: {v} (the draft said {d}).",
                ),
                ("We start at {v} sharp.", "Things kick off at {v}.", "Please arrive a little before {v}."),
                ("Sorry, I got the time wrong: it starts at {v}, not {d}.",),
            ),
            Slot(
                "venue",
                (
                    "Room 4B",
                    "the library",
                    "the rooftop terrace",
                    "the main hall",
                    "Studio 2",
                    "the garden pavilion",
                    "the basement lounge",
                    "Room 12",
                ),
                ("Because {d} is being renovated, it will be held in {v}.", "Venue: {v}, not {d}."),
                ("We will gather in {v}.", "The venue is {v}.", "You will find us in {v}."),
                ("Also, {d} is closed that week, so we moved to {v}.",),
            ),
            Slot(
                "fee",
                ("$15", "$25", "$40", "$60", "$12", "$35"),
                (
                    "Each person pays {v}; last year the fee was {d}.",
                    "The fee is {v} per person (it used to be {d}).",
                ),
                (
                    "The fee is {v} per person.",
                    "Each of you pays {v}, which covers materials.",
                    "Please bring {v} for the fee.",
                ),
                ("The fee went up, by the way: {v} instead of {d}.",),
            ),
            Slot(
                "sender",
                _NAMES,
                ("Sign it as {v}; {d} is only in copy.", "It goes out from {v}, with {d} in copy."),
                ("Best regards, {v}", "See you there, {v}", "Thanks, {v}"),
                ("Actually, sign it as {v}, not {d}.",),
                sign_off=True,
            ),
        ),
        steps=(
            "the welcome talk",
            "the safety briefing",
            "the tour of the building",
            "the lunch break",
            "the group photo",
            "the question round",
            "the award ceremony",
            "the closing remarks",
            "the quiz",
            "the raffle",
        ),
        ordered_steps=False,
        step_prompt=(
            "Mention the programme in this order: {steps}.",
            "The email should list the programme in this order: {steps}.",
        ),
        step_reply=(
            "On the day we will begin with {first}, then move on to {middle}, and end with {last}.",
            "The programme: first {first}, then {middle}, and last of all {last}.",
            "We open with {first}, continue with {middle}, and wrap up with {last}.",
        ),
        openings=(
            "I am happy to invite you to our {topic}.",
            "Here are the details of our {topic}.",
            "Our {topic} is coming up, and I hope you can all join.",
        ),
        closings=(
            "Let me know if you have any questions.",
            "Reply to this email if anything is unclear.",
            "Looking forward to seeing you.",
        ),
        greetings=("Hello {who},", "Hi {who},", "Dear {who},"),
    ),
    TextScenario(
        name="recipe",
        asks=(
            "Write clear instructions for making {topic} for {who}.",
            "Explain to {who} how to make {topic}.",
            "Write down my {topic} recipe so that {who} can follow it.",
        ),
        topics=(
            "banana bread",
            "lemon cake",
            "vegetable lasagne",
            "apple crumble",
            "cornbread",
            "focaccia",
            "carrot cake",
            "shepherd's pie",
        ),
        audiences=(
            "my nephew",
            "a beginner cook",
            "my flatmate",
            "the cooking club",
            "my grandfather",
            "a friend",
        ),
        slots=(
            Slot(
                "oven temperature",
                ("180°C", "200°C", "160°C", "220°C", "190°C", "170°C"),
                ("Bake it at {v}; the old card says {d}, which burns it.", "Use {v} for the oven (not {d})."),
                ("Set the oven to {v}.", "Bake at {v}.", "The oven should be at {v}."),
                ("Wait, {d} is too hot for my oven: use {v}.",),
            ),
            Slot(
                "baking time",
                ("25 minutes", "40 minutes", "15 minutes", "55 minutes", "30 minutes", "45 minutes"),
                (
                    "It needs {v} in the oven, not the {d} printed on the packet.",
                    "Baking time is {v} (my old notes say {d}).",
                ),
                (
                    "It needs {v} in the oven.",
                    "Leave it to bake for {v}.",
                    "Give it {v} before you check it.",
                ),
                ("One correction: it needs {v}, not {d}.",),
            ),
            Slot(
                "servings",
                ("4 people", "6 people", "8 people", "2 people", "10 people"),
                ("It should serve {v}; my old version served {d}.", "Scale it for {v}, not {d}."),
                ("This amount serves {v}.", "It is enough for {v}.", "You will have plenty for {v}."),
                ("We are {v} now, not {d}.",),
            ),
            Slot(
                "dish",
                ("a round tin", "a loaf tin", "a square tray", "a cast-iron pan", "a glass dish"),
                ("Use {v}, since {d} is too small.", "Bake it in {v} rather than {d}."),
                ("Use {v} for it.", "Everything goes into {v}.", "Grab {v} before you start."),
                ("I no longer have {d}, so it has to be {v}.",),
            ),
        ),
        steps=(
            "preheat the oven",
            "grease the tin",
            "mix the dry ingredients",
            "whisk the eggs",
            "stir in the milk",
            "fold in the fruit",
            "pour in the batter",
            "sprinkle the topping",
            "bake until golden",
            "let it cool",
        ),
        ordered_steps=True,
        step_prompt=("The steps, in this order: {steps}.", "Keep the steps in this order: {steps}."),
        step_reply=(
            "First {first}, then {middle}, and finally {last}.",
            "Start to {first}, go on to {middle}, and finish when you {last}.",
            "Begin: {first}; next, {middle}; at the end, {last}.",
        ),
        openings=(
            "Here is how to make {topic}.",
            "This {topic} is easy once you know the order.",
            "Making {topic} takes a little patience but no special skill.",
        ),
        closings=("Enjoy it while it is fresh.", "It keeps for two days in a tin.", "Have fun baking."),
    ),
    TextScenario(
        name="support",
        asks=(
            "Write the support team's reply to {who} about a problem with {topic}.",
            "As a support agent, answer {who}, who wrote in about {topic}.",
            "Draft a reply from customer support to {who} regarding {topic}.",
        ),
        topics=(
            "the blue kettle",
            "the desk lamp",
            "the wireless mouse",
            "the rice cooker",
            "the travel mug",
            "the bike light",
        ),
        audiences=("Ms Okafor", "Mr Lindqvist", "Ms Tanaka", "Mr Alvarez", "Ms Novak", "Mr Haddad"),
        slots=(
            Slot(
                "order number",
                ("#48213", "#51977", "#39024", "#60418", "#27755", "#73306"),
                ("The order is {v}; {d} is an older order of theirs.", "Quote order {v} (not {d})."),
                (
                    "This concerns your order {v}.",
                    "I have looked up order {v}.",
                    "Your order {v} is in our system.",
                ),
                ("Sorry, wrong number before: the order is {v}, not {d}.",),
            ),
            Slot(
                "refund",
                ("$18.50", "$42.00", "$7.99", "$63.20", "$29.95", "$12.40"),
                ("They get a refund of {v}; the {d} in the form was a typo.", "Refund amount: {v}, not {d}."),
                ("We will refund {v}.", "A refund of {v} is on its way.", "You will receive {v} back."),
                ("The refund is {v}; I mistyped {d} earlier.",),
            ),
            Slot(
                "delivery date",
                ("March 3", "March 12", "April 8", "April 21", "May 5", "May 17"),
                (
                    "The replacement arrives on {v}; {d} was the first estimate.",
                    "Promise delivery on {v}, not {d}.",
                ),
                (
                    "The replacement arrives on {v}.",
                    "Expect the new one on {v}.",
                    "It will be with you on {v}.",
                ),
                ("The warehouse updated it: {v} instead of {d}.",),
            ),
            Slot(
                "agent",
                ("Sam", "Noor", "Felix", "Chloe", "Hugo", "Mina"),
                ("Sign as {v}; {d} handled the earlier ticket.", "The reply comes from {v}, not {d}."),
                ("Kind regards, {v}", "Best wishes, {v}", "All the best, {v}"),
                ("Please sign it as {v}; {d} is on leave.",),
                sign_off=True,
            ),
        ),
        steps=(
            "unplug the device",
            "wait half a minute",
            "hold the reset button",
            "plug it back in",
            "check the status light",
            "run the self-test",
            "update the app",
            "send us a photo",
        ),
        ordered_steps=True,
        step_prompt=(
            "Include these troubleshooting steps, in this order: {steps}.",
            "Tell them to {steps}, in that order.",
        ),
        step_reply=(
            "Meanwhile, please {first}, then {middle}, and lastly {last}.",
            "Until then, you can try this: {first}, after that {middle}, and finally {last}.",
            "In the meantime: {first}; then {middle}; last, {last}.",
        ),
        openings=(
            "Thank you for writing to us about {topic}.",
            "I am sorry to hear about the trouble with {topic}.",
            "Thanks for your patience with {topic}.",
        ),
        closings=(
            "We are here if you need anything else.",
            "Please reply if the problem comes back.",
            "Thank you for shopping with us.",
        ),
        greetings=("Dear {who},", "Hello {who},"),
    ),
    TextScenario(
        name="itinerary",
        asks=(
            "Write a message to {who} with the plan for our trip to {topic}.",
            "Send {who} a short itinerary for the {topic} trip.",
            "Write {who} the travel plan for {topic}.",
        ),
        topics=("Lisbon", "Kyoto", "Edinburgh", "Cape Town", "Montreal", "Valencia", "Tallinn"),
        audiences=(
            "my sister|Anna",
            "our travel group|all",
            "my colleague|Ben",
            "Grandma|Grandma",
            "the hiking club|hikers",
            "my roommate|Leo",
        ),
        slots=(
            Slot(
                "flight",
                ("LX 318", "BA 2274", "KL 1009", "AF 1640", "IB 3171", "SK 905"),
                ("We fly on {v}; {d} was the cancelled one.", "Our flight is {v}, not {d}."),
                ("We are booked on {v}.", "Our flight is {v}.", "Look for flight {v} on the board."),
                ("Change of plan: we are on {v} now, {d} was cancelled.",),
            ),
            Slot(
                "departure",
                ("6:40 am", "8:05 am", "12:20 pm", "5:55 pm", "9:10 pm"),
                ("It leaves at {v} (the app still shows {d}).", "Departure is {v}, not {d}."),
                ("It leaves at {v}.", "Departure is at {v}.", "Be ready to board well before {v}."),
                ("The airline moved it: {v} rather than {d}.",),
            ),
            Slot(
                "gate",
                ("Gate B12", "Gate A3", "Gate C27", "Gate D8", "Gate E15"),
                ("Meet at {v}; {d} is where we met last time.", "We meet at {v} (not {d})."),
                ("Let us meet at {v}.", "I will wait for you at {v}.", "Our meeting point is {v}."),
                ("Not {d} after all: meet me at {v}.",),
            ),
            Slot(
                "hotel",
                (
                    "Hotel Miramar",
                    "the Linden Inn",
                    "Casa Azul",
                    "the Harbour Lodge",
                    "Hotel Adler",
                    "the Old Mill",
                ),
                ("We stay at {v}; {d} was fully booked.", "The hotel is {v}, not {d}."),
                ("We are staying at {v}.", "Our rooms are at {v}.", "The bags go straight to {v}."),
                ("{d} cancelled on us, so we are at {v}.",),
            ),
        ),
        steps=(
            "the old town walk",
            "the boat trip",
            "the museum visit",
            "the market",
            "the cooking class",
            "the hike to the lighthouse",
            "the wine tasting",
            "the cathedral",
        ),
        ordered_steps=False,
        step_prompt=("The days go in this order: {steps}.", "Plan the activities in this order: {steps}."),
        step_reply=(
            "We will start with {first}, then do {middle}, and finish with {last}.",
            "The plan is {first} first, then {middle}, and {last} at the end.",
            "Day by day: {first}; {middle}; and to close, {last}.",
        ),
        openings=(
            "Here is the plan for {topic}.",
            "I have sorted out our trip to {topic}.",
            "Everything for {topic} is booked.",
        ),
        closings=("Pack light.", "Call me if anything changes.", "It is going to be great."),
        greetings=("Hi {who},", "Hello {who},"),
    ),
    TextScenario(
        name="status",
        asks=(
            "Write a status update on the {topic} project for {who}.",
            "Summarise where the {topic} project stands, for {who}.",
            "Draft the weekly {topic} project update for {who}.",
        ),
        topics=(
            "website redesign",
            "warehouse app",
            "onboarding portal",
            "billing migration",
            "mobile checkout",
            "data dashboard",
        ),
        audiences=(
            "the steering group|all",
            "our director|Ruth",
            "the whole team|team",
            "the client|Mr Brandt",
            "the board|board members",
        ),
        slots=(
            Slot(
                "deadline",
                ("June 14", "June 28", "July 9", "July 23", "August 6"),
                (
                    "The deadline is now {v}; {d} was the original date.",
                    "Report {v} as the deadline, not {d}.",
                ),
                ("We are on track for {v}.", "The deadline stands at {v}.", "Delivery is planned for {v}."),
                ("Correction: the deadline moved to {v}, from {d}.",),
            ),
            Slot(
                "owner",
                ("Dana", "Marco", "Yuki", "Farid", "Elena", "Chris"),
                ("{v} owns the project now; {d} moved to another team.", "The owner is {v}, not {d}."),
                (
                    "{v} leads the work.",
                    "Questions go to {v}, who owns the project.",
                    "The project is run by {v}.",
                ),
                ("{d} handed it over: {v} owns it now.",),
            ),
            Slot(
                "progress",
                ("40%", "55%", "70%", "85%", "25%"),
                ("It is {v} done; the {d} in the tracker is stale.", "Progress: {v} (not {d})."),
                ("We are {v} of the way there.", "The work is {v} complete.", "Progress stands at {v}."),
                ("The tracker was stale: it is {v}, not {d}.",),
            ),
            Slot(
                "budget",
                ("$3,200", "$5,750", "$1,900", "$8,400", "$2,600"),
                ("{v} of the budget remains; {d} was last month's figure.", "Budget left: {v}, not {d}."),
                (
                    "There is {v} left in the budget.",
                    "The remaining budget is {v}.",
                    "We still have {v} to spend.",
                ),
                ("Finance corrected it: {v} left, not {d}.",),
            ),
        ),
        steps=(
            "the timeline",
            "the open risks",
            "the budget review",
            "the next milestone",
            "the hiring plan",
            "the customer feedback",
            "the demo",
            "the lessons learned",
        ),
        ordered_steps=False,
        step_prompt=(
            "Cover these items in this order: {steps}.",
            "The update should go through {steps}, in that order.",
        ),
        step_reply=(
            "This week we look at {first}, then {middle}, and close with {last}.",
            "In order: {first}, followed by {middle}, and last {last}.",
            "Covered below: {first}; {middle}; finally {last}.",
        ),
        openings=(
            "Here is this week's update on the {topic}.",
            "A quick update on the {topic}.",
            "The {topic} made steady progress this week.",
        ),
        closings=(
            "More next week.",
            "Happy to go into detail at the next meeting.",
            "Thanks for your support.",
        ),
        greetings=("Hello {who},", "Dear {who},"),
    ),
    TextScenario(
        name="training",
        asks=(
            "Write a training plan for {who} focused on {topic}.",
            "Put together a home workout for {who} to build {topic}.",
            "Write {who} a short exercise routine for {topic}.",
        ),
        topics=("leg strength", "core stability", "general fitness", "upper-body strength", "endurance"),
        audiences=(
            "my father|Dad",
            "a beginner|there",
            "my running partner|Kim",
            "the office group|all",
            "my cousin|Jo",
        ),
        slots=(
            Slot(
                "sets",
                ("3 sets", "4 sets", "5 sets", "2 sets"),
                ("Do {v} of each; {d} was too much last time.", "Use {v}, not {d}."),
                ("Do {v} of each exercise.", "Each exercise gets {v}.", "Aim for {v} per exercise."),
                ("Let us go with {v} after all, not {d}.",),
            ),
            Slot(
                "reps",
                ("8 reps", "10 reps", "12 reps", "15 reps", "20 reps"),
                ("Each set is {v} (my coach used to say {d}).", "Go for {v} per set, not {d}."),
                ("Each set has {v}.", "Count {v} per set.", "Stop each set at {v}."),
                ("Make it {v} per set instead of {d}.",),
            ),
            Slot(
                "rest",
                ("30 seconds", "45 seconds", "60 seconds", "90 seconds"),
                ("Rest {v} between sets; {d} is too long.", "Breaks of {v}, not {d}."),
                (
                    "Rest for {v} between sets.",
                    "Take {v} off between sets.",
                    "Breathe for {v} before the next set.",
                ),
                ("Shorter breaks, please: {v}, not {d}.",),
            ),
            Slot(
                "weight",
                ("5 kg", "8 kg", "12 kg", "16 kg", "20 kg"),
                ("Use {v} dumbbells; {d} ones are too heavy for now.", "Dumbbells of {v} (not {d})."),
                ("Use {v} dumbbells.", "Pick up the {v} weights.", "The {v} dumbbells are right for now."),
                ("I only have {v} dumbbells, not {d}.",),
            ),
        ),
        steps=("squats", "push-ups", "lunges", "planks", "rows", "burpees", "bridges", "step-ups"),
        ordered_steps=False,
        step_prompt=("Do the exercises in this order: {steps}.", "The order of exercises is {steps}."),
        step_reply=(
            "Start with {first}, move on to {middle}, and finish with {last}.",
            "The circuit runs {first} first, then {middle}, and {last} last.",
            "Order of work: {first}; {middle}; {last} to end.",
        ),
        openings=(
            "Here is a plan for {topic}.",
            "This routine builds {topic} without a gym.",
            "A short routine for {topic}.",
        ),
        closings=(
            "Warm up first and stop if anything hurts.",
            "Stick with it for a month.",
            "Drink water and rest well.",
        ),
        greetings=("Hi {who},", "Hello {who},"),
    ),
)

SYSTEM_TURNS = (
    "You are a helpful assistant who writes clear, friendly messages.",
    "You are an assistant that helps people write everyday texts.",
    "You help users write short, accurate messages.",
)
ASSISTANT_ASKS = (
    "Happy to help. What else should it include?",
    "Sure. Tell me the details and I will write it.",
    "Of course. Anything else I should know?",
)
USER_FINISH = (
    "Please write it now.",
    "Go ahead and write it.",
    "Can you write the full text?",
)
REPLY_LEADS = ("Here it is:", "Here is a version:", "Sure, here you go:")


def _join(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def sample_task(kind: TextKind, rng: random.Random, n_steps: int = 4) -> TextSpec:
    """A new task: scenario, facts with decoys, steps, and the instruction's wording (``style``)."""
    scenario = rng.choice(SCENARIOS)
    facts = []
    fact_prompts = []
    for slot in scenario.slots:
        value, decoy = rng.sample(slot.pool, 2)
        facts.append(Fact(slot.key, value, (decoy,)))
        fact_prompts.append((slot, value, decoy))
    n_steps = min(n_steps, len(scenario.steps))
    if scenario.ordered_steps:
        steps = [scenario.steps[i] for i in sorted(rng.sample(range(len(scenario.steps)), n_steps))]
    else:
        steps = rng.sample(scenario.steps, n_steps)
    who, _, greet = rng.choice(scenario.audiences).partition("|")
    topic = rng.choice(scenario.topics)
    ask = rng.choice(scenario.asks).format(who=who, topic=topic)
    stated = [rng.choice(slot.prompt).format(v=v, d=d) for slot, v, d in fact_prompts]
    step_sentence = rng.choice(scenario.step_prompt).format(steps=_join(steps))
    style: dict[str, object] = {"scenario": scenario.name, "who": who, "greet": greet or who, "topic": topic}
    if kind == "text":
        order = list(range(len(stated)))
        rng.shuffle(order)
        sentences = [ask, *(stated[i] for i in order), step_sentence]
        style["prompt"] = " ".join(sentences)
    else:
        # The user gives some facts first, the assistant asks for the rest, the user gives them
        # and corrects one fact stated wrongly in the first turn (its decoy, then its value).
        k = len(fact_prompts)
        first = rng.sample(range(k), k // 2)
        corrected = rng.choice([i for i in range(k) if i not in first])
        opening = [ask] + [stated[i] for i in first]
        slot, v, d = fact_prompts[corrected]
        # The first turn gives the wrong value plainly; the correction comes later.
        plain = rng.choice(slot.reply).format(v=d)
        opening.append(plain)
        later = [stated[i] for i in range(k) if i not in first and i != corrected]
        rng.shuffle(later)
        correction = rng.choice(slot.correction).format(v=v, d=d) if slot.correction else stated[corrected]
        later += [step_sentence, correction, rng.choice(USER_FINISH)]
        turns: list[tuple[str, str]] = []
        if rng.random() < 0.5:
            turns.append(("system", rng.choice(SYSTEM_TURNS)))
        turns += [
            ("user", " ".join(opening)),
            ("assistant", rng.choice(ASSISTANT_ASKS)),
            ("user", " ".join(later)),
        ]
        style["turns"] = tuple(turns)
        style["prompt"] = "\n\n".join(f"{role.capitalize()}: {text}" for role, text in turns)
    return TextSpec(kind=kind, facts=tuple(facts), steps=tuple(steps), scenario=scenario.name, style=style)


def scenario_of(spec: TextSpec) -> TextScenario:
    return next(s for s in SCENARIOS if s.name == spec.scenario)


def render_response(spec: TextSpec, plan: Plan, rng: random.Random) -> str:
    """One response following ``plan``, its phrasing drawn from ``rng``."""
    scenario = scenario_of(spec)
    greet, topic = str(spec.style["greet"]), str(spec.style["topic"])
    slots = {slot.key: slot for slot in scenario.slots}
    steps = [spec.steps[i] for i in plan.order]
    middle = _join(steps[1:-1]) if len(steps) > 2 else steps[-1]
    if len(steps) > 2:
        walk = rng.choice(scenario.step_reply).format(first=steps[0], middle=middle, last=steps[-1])
    else:
        walk = f"First {steps[0]}, then {steps[-1]}."
    greeting = rng.choice(scenario.greetings).format(who=greet)
    lines = [greeting] if greeting else []
    body = [rng.choice(scenario.openings).format(topic=topic)]
    sign_off = None
    fact_sentences = []
    for fact in spec.facts:
        slot = slots[fact.key]
        sentence = rng.choice(slot.reply).format(v=plan.value(fact.key))
        if slot.sign_off:
            sign_off = sentence
        else:
            fact_sentences.append(sentence)
    # Where the steps go among the facts is the response's own choice.
    body += fact_sentences
    body.insert(rng.randint(2, len(body)), walk)
    body.append(rng.choice(scenario.closings))
    lines.append(" ".join(body))
    if sign_off:
        lines.append(sign_off)
    text = "\n\n".join(lines)
    if spec.kind == "dialogue":
        text = f"{rng.choice(REPLY_LEADS)}\n\n{text}"
    return text


__all__ = ["SCENARIOS", "TextScenario", "Slot", "render_response", "sample_task", "scenario_of"]
