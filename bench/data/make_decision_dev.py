"""Write ``decision_dev.jsonl``: the development set for the call-or-answer decision of tool_choice="auto".

Hand-written for this project (never a public benchmark's test data). Three kinds of turn:

* ``call``: a request that one bound tool performs, with the exact call expected (arguments
  literally recoverable from the request);
* ``no_call``: tools are bound but none fits: small talk, thanks, general knowledge, a request
  for a tool that is not bound, remarks that mention a tool's domain without asking for it;
* ``after_tool``: the turn right after a tool result, which should answer in text.

Each line: ``{"id", "category", "group", "messages", "tools", "expected"}``; ``group`` is the tool
family, so a fit can be cross-validated with whole families held out. The file is rebuilt the same
way every time (no randomness): ``python bench/data/make_decision_dev.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("decision_dev.jsonl")


def tool(name: str, description: str, props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    params = {"type": "object", "properties": props, "required": list(props) if required is None else required}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": params}}


S = {"type": "string"}
N = {"type": "number"}
I = {"type": "integer"}  # noqa: E741

# family -> (tools, [(request, expected name, expected arguments)], tool result for after_tool cases)
FAMILIES: dict[str, tuple[list[dict[str, Any]], list[tuple[str, str, dict[str, Any]]], str]] = {
    "weather": (
        [tool("get_weather", "Get the current weather for a city", {"city": S})],
        [("What's the weather in Paris?", "get_weather", {"city": "Paris"}),
         ("Is it raining in Tokyo right now?", "get_weather", {"city": "Tokyo"}),
         ("how hot is it in Cairo today", "get_weather", {"city": "Cairo"}),
         ("Could you check the weather for Oslo please?", "get_weather", {"city": "Oslo"}),
         ("Do I need an umbrella in London?", "get_weather", {"city": "London"})],
        "Light rain, 12 C, wind 15 km/h",
    ),
    "calculator": (
        [tool("calculate", "Evaluate an arithmetic expression", {"expression": S})],
        [("What is 234 * 17?", "calculate", {"expression": "234 * 17"}),
         ("calculate 15 + 27", "calculate", {"expression": "15 + 27"}),
         ("Can you work out 1024 / 8 for me?", "calculate", {"expression": "1024 / 8"}),
         ("compute 99 - 45", "calculate", {"expression": "99 - 45"})],
        "3978",
    ),
    "email": (
        [tool("send_email", "Send an email to a recipient", {"to": S, "subject": S, "body": S}, ["to", "body"])],
        [("Send an email to bob@example.com saying the report is ready", "send_email",
          {"to": "bob@example.com", "body": "the report is ready"}),
         ("email alice@corp.io: lunch is moved to 1pm", "send_email", {"to": "alice@corp.io", "body": "lunch is moved to 1pm"}),
         ("Please write to sam@mail.com that I will be late", "send_email", {"to": "sam@mail.com", "body": "I will be late"})],
        "Email sent (message id 8812).",
    ),
    "currency": (
        [tool("convert_currency", "Convert an amount between currencies",
              {"amount": N, "from_currency": S, "to_currency": S})],
        [("Convert 100 USD to EUR", "convert_currency", {"amount": 100, "from_currency": "USD", "to_currency": "EUR"}),
         ("how much is 50 GBP in JPY?", "convert_currency", {"amount": 50, "from_currency": "GBP", "to_currency": "JPY"}),
         ("What are 250 CHF in USD?", "convert_currency", {"amount": 250, "from_currency": "CHF", "to_currency": "USD"})],
        '{"result": 92.4, "rate": 0.924}',
    ),
    "units": (
        [tool("convert_units", "Convert a quantity from one unit to another", {"value": N, "from_unit": S, "to_unit": S})],
        [("Convert 5 km to miles", "convert_units", {"value": 5, "from_unit": "km", "to_unit": "miles"}),
         ("how many pounds is 70 kg", "convert_units", {"value": 70, "from_unit": "kg", "to_unit": "pounds"}),
         ("turn 30 celsius into fahrenheit", "convert_units", {"value": 30, "from_unit": "celsius", "to_unit": "fahrenheit"})],
        "3.107",
    ),
    "calendar": (
        [tool("create_event", "Create a calendar event", {"title": S, "date": S, "time": S}, ["title", "date"])],
        [("Add a dentist appointment on 2026-12-10 to my calendar", "create_event",
          {"title": "dentist appointment", "date": "2026-12-10"}),
         ("Schedule 'Team sync' for 2027-01-05", "create_event", {"title": "Team sync", "date": "2027-01-05"}),
         ("put Mom's birthday on my calendar for 2026-12-24", "create_event", {"title": "Mom's birthday", "date": "2026-12-24"})],
        "Event created: id ev_551",
    ),
    "timer": (
        [tool("set_timer", "Start a countdown timer", {"minutes": I, "label": S}, ["minutes"])],
        [("Set a timer for 10 minutes", "set_timer", {"minutes": 10}),
         ("start a 25 minute timer", "set_timer", {"minutes": 25}),
         ("Timer for 3 minutes please", "set_timer", {"minutes": 3})],
        "Timer started: 10:00",
    ),
    "todo": (
        [tool("add_todo", "Add an item to the to-do list", {"item": S})],
        [("Add 'buy milk' to my to-do list", "add_todo", {"item": "buy milk"}),
         ("put renew passport on my todo list", "add_todo", {"item": "renew passport"}),
         ("Remind me via my list to call the plumber: add it", "add_todo", {"item": "call the plumber"})],
        "Added. 4 items on the list.",
    ),
    "search": (
        [tool("web_search", "Search the web for up-to-date information", {"query": S})],
        [("Search the web for the latest SpaceX launch", "web_search", {"query": "latest SpaceX launch"}),
         ("look up reviews of the Framework laptop online", "web_search", {"query": "reviews of the Framework laptop"}),
         ("Google the opening hours of the Louvre", "web_search", {"query": "opening hours of the Louvre"})],
        "Top result: The Louvre is open 9:00-18:00, closed Tuesdays.",
    ),
    "stocks": (
        [tool("get_stock_price", "Get the latest price of a stock by ticker symbol", {"ticker": S})],
        [("What's the stock price of AAPL?", "get_stock_price", {"ticker": "AAPL"}),
         ("how is TSLA trading today", "get_stock_price", {"ticker": "TSLA"}),
         ("Give me the current share price for MSFT", "get_stock_price", {"ticker": "MSFT"})],
        "AAPL 231.40 USD (+1.2%)",
    ),
    "flights": (
        [tool("search_flights", "Search flights between two airports on a date",
              {"origin": S, "destination": S, "date": S})],
        [("Find flights from JFK to LAX on 2026-12-20", "search_flights",
          {"origin": "JFK", "destination": "LAX", "date": "2026-12-20"}),
         ("any flights CDG to FCO on 2027-02-14?", "search_flights",
          {"origin": "CDG", "destination": "FCO", "date": "2027-02-14"})],
        '[{"flight": "AA10", "departs": "08:00", "price": 289}]',
    ),
    "orders": (
        [tool("lookup_order", "Look up the status of a customer order", {"order_id": S}),
         tool("cancel_order", "Cancel a customer order", {"order_id": S, "reason": S}, ["order_id"])],
        [("Where is my order A1234?", "lookup_order", {"order_id": "A1234"}),
         ("What's the status of order 99817?", "lookup_order", {"order_id": "99817"}),
         ("Please cancel order B-552", "cancel_order", {"order_id": "B-552"}),
         ("I want to cancel my order ZX9", "cancel_order", {"order_id": "ZX9"})],
        '{"status": "shipped", "eta": "2026-12-06"}',
    ),
    "support": (
        [tool("create_ticket", "Open a support ticket", {"summary": S, "priority": {"type": "string",
              "enum": ["low", "normal", "high"]}}, ["summary"]),
         tool("reset_password", "Send a password reset link to a user", {"email": S})],
        [("Reset the password for jane@shop.com", "reset_password", {"email": "jane@shop.com"}),
         ("I forgot my password, my email is tom@site.org", "reset_password", {"email": "tom@site.org"}),
         ("Open a ticket: the printer on floor 3 is broken", "create_ticket", {"summary": "the printer on floor 3 is broken"}),
         ("create a high priority ticket: VPN is down", "create_ticket", {"summary": "VPN is down", "priority": "high"})],
        "Ticket T-1042 created.",
    ),
    "music": (
        [tool("play_music", "Play a song or artist", {"query": S})],
        [("Play Bohemian Rhapsody", "play_music", {"query": "Bohemian Rhapsody"}),
         ("put on some Miles Davis", "play_music", {"query": "Miles Davis"}),
         ("play the song Yesterday by the Beatles", "play_music", {"query": "Yesterday by the Beatles"})],
        "Now playing.",
    ),
    "lights": (
        [tool("set_lights", "Turn the lights in a room on or off", {"room": S, "state": {"type": "string",
              "enum": ["on", "off"]}})],
        [("Turn off the lights in the kitchen", "set_lights", {"room": "kitchen", "state": "off"}),
         ("switch the bedroom lights on", "set_lights", {"room": "bedroom", "state": "on"}),
         ("lights on in the living room please", "set_lights", {"room": "living room", "state": "on"})],
        "Kitchen lights are off.",
    ),
    "thermostat": (
        [tool("set_temperature", "Set the thermostat to a temperature in Celsius", {"celsius": N})],
        [("Set the thermostat to 21 degrees", "set_temperature", {"celsius": 21}),
         ("make it 19 celsius in here", "set_temperature", {"celsius": 19})],
        "Thermostat set to 21 C.",
    ),
    "translate": (
        [tool("translate", "Translate text into another language", {"text": S, "target_language": S})],
        [("Translate 'good morning' into Spanish", "translate", {"text": "good morning", "target_language": "Spanish"}),
         ("how do you say 'thank you' in Japanese? translate it", "translate",
          {"text": "thank you", "target_language": "Japanese"}),
         ("Translate 'where is the station' to German", "translate",
          {"text": "where is the station", "target_language": "German"})],
        "buenos días",
    ),
    "dictionary": (
        [tool("define_word", "Look up the definition of an English word", {"word": S})],
        [("Define the word 'ephemeral'", "define_word", {"word": "ephemeral"}),
         ("what does ubiquitous mean? look it up", "define_word", {"word": "ubiquitous"})],
        "ephemeral: lasting a very short time.",
    ),
    "news": (
        [tool("get_news", "Get the latest news headlines on a topic", {"topic": S})],
        [("Get me the latest news about climate", "get_news", {"topic": "climate"}),
         ("any headlines on the election?", "get_news", {"topic": "election"})],
        "1. Talks resume in Geneva. 2. Record heat in November.",
    ),
    "directions": (
        [tool("get_directions", "Driving directions between two places", {"origin": S, "destination": S})],
        [("Directions from Berlin to Hamburg", "get_directions", {"origin": "Berlin", "destination": "Hamburg"}),
         ("how do I drive from Boston to New York", "get_directions", {"origin": "Boston", "destination": "New York"})],
        "Take the A24 north-west, 289 km, about 3 h.",
    ),
    "restaurants": (
        [tool("book_table", "Book a restaurant table", {"restaurant": S, "people": I, "time": S})],
        [("Book a table at Nopa for 4 people at 19:30", "book_table", {"restaurant": "Nopa", "people": 4, "time": "19:30"}),
         ("reserve Chez Panisse for 2 at 20:00", "book_table", {"restaurant": "Chez Panisse", "people": 2, "time": "20:00"})],
        "Booked: confirmation R-77.",
    ),
    "crm": (
        [tool("find_customer", "Find a customer record by email", {"email": S})],
        [("Look up the customer with email li@acme.com", "find_customer", {"email": "li@acme.com"}),
         ("who is the customer behind ops@globex.com?", "find_customer", {"email": "ops@globex.com"})],
        '{"name": "Li Wei", "plan": "enterprise", "since": "2021"}',
    ),
    "shipping": (
        [tool("track_package", "Track a parcel by its tracking number", {"tracking_number": S})],
        [("Track package 1Z999AA10123456784", "track_package", {"tracking_number": "1Z999AA10123456784"}),
         ("where's my parcel? tracking number is JD0146", "track_package", {"tracking_number": "JD0146"})],
        "In transit, arriving Monday.",
    ),
    "sports": (
        [tool("get_score", "Get the latest score of a sports team", {"team": S})],
        [("What was the score of the Lakers game?", "get_score", {"team": "Lakers"}),
         ("how did Arsenal do last night", "get_score", {"team": "Arsenal"})],
        "Lakers 112 - 104 Celtics",
    ),
    "recipes": (
        [tool("find_recipe", "Find a recipe for a dish", {"dish": S})],
        [("Find me a recipe for lasagna", "find_recipe", {"dish": "lasagna"}),
         ("I need a recipe for banana bread", "find_recipe", {"dish": "banana bread"})],
        "Banana bread: 3 bananas, 250 g flour, bake 60 min at 175 C.",
    ),
    "timezones": (
        [tool("get_time", "Get the current local time in a city", {"city": S})],
        [("What time is it in Sydney?", "get_time", {"city": "Sydney"}),
         ("current time in Chicago please", "get_time", {"city": "Chicago"})],
        "14:05 (UTC+11)",
    ),
    "files": (
        [tool("search_files", "Search the user's files by name", {"name": S})],
        [("Find my file called budget.xlsx", "search_files", {"name": "budget.xlsx"}),
         ("search my files for resume.pdf", "search_files", {"name": "resume.pdf"})],
        "/home/me/docs/budget.xlsx",
    ),
}

SYSTEMS = ["", "You are a helpful assistant.", "You are a concise assistant. Use tools when they help.",
           "You help users with everyday tasks."]

# Requests no bound tool answers. Each is asked with the tools of the family named next to it.
NO_CALL: list[tuple[str, str]] = [
    ("Hi there! How are you?", "weather"), ("Hello!", "calculator"), ("Thanks, that's all.", "email"),
    ("thank you so much", "orders"), ("Good morning :)", "lights"), ("bye for now", "music"),
    ("Who wrote Hamlet?", "weather"), ("What is the capital of Australia?", "email"),
    ("Why is the sky blue?", "calculator"), ("Tell me a joke.", "todo"), ("Write a haiku about autumn.", "timer"),
    ("What's your name?", "stocks"), ("Are you a robot?", "support"), ("Can you explain what a black hole is?", "news"),
    ("I love rainy weather, it's so cozy.", "weather"), ("Math was my favourite subject at school.", "calculator"),
    ("I got a lot of emails today, ugh.", "email"), ("Money doesn't buy happiness, right?", "currency"),
    ("My calendar is so full this month.", "calendar"), ("Music makes me happy.", "music"),
    ("Book me a flight to Rome.", "weather"), ("Order a pizza for me.", "calculator"),
    ("Play some jazz.", "email"), ("Turn off the lights.", "stocks"), ("Translate 'hello' into French.", "timer"),
    ("What's the score of the Yankees game?", "recipes"), ("Send a text to my mom.", "weather"),
    ("Who painted the Mona Lisa?", "search"), ("How many legs does a spider have?", "dictionary"),
    ("What is photosynthesis?", "translate"), ("Give me three tips for better sleep.", "thermostat"),
    ("Summarize the plot of Romeo and Juliet.", "restaurants"), ("What does DNA stand for?", "crm"),
    ("ok", "shipping"), ("cool, thanks!", "sports"), ("nice", "files"), ("You're very helpful.", "timezones"),
    ("What can you do?", "orders"), ("How old is the universe?", "flights"), ("Recommend a good book.", "music"),
    ("What's the difference between a virus and a bacterium?", "directions"),
    ("I'm feeling a bit tired today.", "todo"), ("Weekends are the best.", "calendar"),
    ("Is coffee bad for you?", "recipes"), ("Explain recursion in one sentence.", "files"),
    ("What's 2 + 2? Just kidding, I know it's 4.", "calculator"), ("Never mind.", "support"),
    ("How do airplanes stay in the air?", "flights"), ("Who is the CEO of your company?", "crm"),
    ("Paris is such a beautiful city.", "weather"), ("I already checked the news this morning.", "news"),
    ("Tell me something interesting about octopuses.", "search"), ("What's the meaning of life?", "dictionary"),
    ("How are rainbows formed?", "weather"), ("Please help me write a polite apology.", "email"),
    ("Can you keep a secret?", "lights"), ("Do you like music?", "music"), ("What's a good name for a cat?", "todo"),
]

PHRASES_AFTER = ["", "Thanks! ", ""]


def main() -> None:
    lines: list[dict[str, Any]] = []
    n = 0
    for family, (tools, requests, result) in FAMILIES.items():
        others = [t for f, (ts, _, _) in FAMILIES.items() if f != family for t in ts]
        for i, (text, name, args) in enumerate(requests):
            extra = others[(n * 7) % len(others): (n * 7) % len(others) + (n % 3)]  # 0-2 distractor tools
            bound = tools + [t for t in extra if t["function"]["name"] not in {x["function"]["name"] for x in tools}]
            system = SYSTEMS[n % len(SYSTEMS)]
            msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
            lines.append({"id": f"call-{n}", "category": "call", "group": family, "messages": msgs, "tools": bound,
                          "expected": [{"name": name, "arguments": args}]})
            if i < 3:  # the turn after this call's result should answer in text
                call = {"id": f"call_{n}", "type": "function",
                        "function": {"name": name, "arguments": json.dumps(args)}}
                after = [*msgs, {"role": "assistant", "content": None, "tool_calls": [call]},
                         {"role": "tool", "tool_call_id": f"call_{n}", "content": result}]
                lines.append({"id": f"after-{n}", "category": "after_tool", "group": family, "messages": after,
                              "tools": bound, "expected": []})
            n += 1
    for k, (text, family) in enumerate(NO_CALL):
        tools = FAMILIES[family][0]
        system = SYSTEMS[k % len(SYSTEMS)]
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
        lines.append({"id": f"nocall-{k}", "category": "no_call", "group": family, "messages": msgs, "tools": tools,
                      "expected": []})
    OUT.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    counts: dict[str, int] = {}
    for line in lines:
        counts[line["category"]] = counts.get(line["category"], 0) + 1
    print(f"wrote {len(lines)} cases to {OUT}: {counts}")


if __name__ == "__main__":
    main()
