"""Write ``auto_decision_dev.jsonl``: a development set for the call-or-answer decision of tool_choice="auto".

This is a DEVELOPMENT set, hand-written for this project, used to fit and measure when a small local
model should call a tool and when it should answer in text. It is never a benchmark's test data: the
held-out set that judges the result is separate and unseen here.

Three kinds of case, over ~35 tool families (weather, math, units, currency, email, calendar, ...):

* ``call``: a request that exactly one bound tool performs; ``expected`` holds that call, with
  arguments literally recoverable from the conversation (required keys plus optional ones the user
  states). Some cases bind 1-3 distractor tools from other families.
* ``no_call``: tools are bound but none should be called: greetings, thanks, small talk, opinions,
  general knowledge, questions about the assistant, requests for a tool that is not bound, remarks
  that mention a tool's domain without asking for anything, and requests missing what a call needs.
* ``after_tool``: the turn right after one (or two) tool results, including errors; the right next
  step is a text answer.

Each line: ``{"id", "category", "group", "messages", "tools", "expected"}``. ``group`` is the tool
family (``general`` for a few mixed bindings) so folds can hold whole families out. The output is the
same on every run (no randomness): ``python bench/data/make_auto_decision_dev.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("auto_decision_dev.jsonl")

Json = dict[str, Any]


# --------------------------------------------------------------------------- schema helpers


def fn(name: str, description: str, properties: Json, required: tuple[str, ...] = ()) -> Json:
    params = {"type": "object", "properties": properties, "required": list(required)}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": params}}


def s(description: str = "", enum: list[str] | None = None) -> Json:
    out: Json = {"type": "string"}
    if description:
        out["description"] = description
    if enum:
        out["enum"] = enum
    return out


def i(description: str = "", minimum: int | None = None, maximum: int | None = None) -> Json:
    out: Json = {"type": "integer"}
    if description:
        out["description"] = description
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


def num(description: str = "", minimum: float | None = None) -> Json:
    out: Json = {"type": "number"}
    if description:
        out["description"] = description
    if minimum is not None:
        out["minimum"] = minimum
    return out


def b(description: str = "") -> Json:
    return {"type": "boolean", "description": description} if description else {"type": "boolean"}


def arr(items: Json, description: str = "") -> Json:
    out: Json = {"type": "array", "items": items}
    if description:
        out["description"] = description
    return out


# --------------------------------------------------------------------------- tool families

FAMILIES: dict[str, list[Json]] = {
    "weather": [
        fn("get_current_weather", "Get current weather conditions for a location.",
           {"location": s("City name, optionally with region or country"),
            "units": s("metric (Celsius) or imperial (Fahrenheit)", ["metric", "imperial"])},
           ("location",)),
        fn("get_weather_forecast", "Get the daily weather forecast for the coming days.",
           {"location": s("City name"), "days": i("Number of days to forecast", 1, 10)},
           ("location", "days")),
    ],
    "math": [
        fn("calculate", "Evaluate an arithmetic expression and return the numeric result.",
           {"expression": s("Expression such as '(3 + 4) * 2' or 'sqrt(2)'")}, ("expression",)),
        fn("describe_numbers", "Compute a summary statistic over a list of numbers.",
           {"numbers": arr({"type": "number"}),
            "statistic": s("", ["mean", "median", "sum", "min", "max", "stdev"])},
           ("numbers", "statistic")),
    ],
    "units": [
        fn("convert_units", "Convert a quantity between units of measurement (length, mass, volume, "
           "temperature, speed).",
           {"value": num(), "from_unit": s("Unit to convert from"), "to_unit": s("Unit to convert to")},
           ("value", "from_unit", "to_unit")),
    ],
    "currency": [
        fn("convert_currency", "Convert an amount of money between currencies at the current rate.",
           {"amount": num(minimum=0), "from_currency": s("ISO 4217 code, e.g. USD"),
            "to_currency": s("ISO 4217 code, e.g. EUR")},
           ("amount", "from_currency", "to_currency")),
        fn("get_exchange_rate", "Get the current exchange rate between two currencies.",
           {"base": s("ISO 4217 code"), "quote": s("ISO 4217 code")}, ("base", "quote")),
    ],
    "email": [
        fn("send_email", "Send an email from the user's account.",
           {"to": s("Recipient email address"), "subject": s(), "body": s("Plain-text body"),
            "cc": s("Optional CC address")},
           ("to", "body")),
        fn("search_inbox", "Search the user's mailbox.",
           {"query": s("Words, sender or subject to search for"), "unread_only": b(),
            "max_results": i("", 1, 50)},
           ("query",)),
    ],
    "calendar": [
        fn("create_calendar_event", "Create an event on the user's calendar.",
           {"title": s(), "date": s("Day as the user says it, e.g. '2024-05-02', 'tomorrow', 'Friday'"),
            "start_time": s("Start time as given, e.g. '14:30' or '3pm'"),
            "duration_minutes": i("", 5, 1440), "attendees": arr({"type": "string"}, "Email addresses")},
           ("title", "date", "start_time")),
        fn("list_calendar_events", "List the events on the user's calendar for one day.",
           {"date": s("Day as the user says it")}, ("date",)),
    ],
    "reminders": [
        fn("set_timer", "Start a countdown timer.",
           {"duration": i("", 1), "unit": s("", ["seconds", "minutes", "hours"]), "label": s()},
           ("duration", "unit")),
        fn("create_reminder", "Create a reminder that notifies the user at a given time.",
           {"text": s("What to remind about"), "remind_at": s("When, as the user says it")},
           ("text", "remind_at")),
    ],
    "todo": [
        fn("add_todo", "Add a task to the user's to-do list.",
           {"title": s(), "priority": s("", ["low", "medium", "high"]), "due_date": s()}, ("title",)),
        fn("list_todos", "List tasks on the to-do list.", {"status": s("", ["open", "completed", "all"])}),
        fn("complete_todo", "Mark a task as completed.", {"todo_id": i("Numeric task id")}, ("todo_id",)),
    ],
    "search": [
        fn("web_search", "Search the web and return the top results with snippets.",
           {"query": s(), "num_results": i("", 1, 20)}, ("query",)),
    ],
    "stocks": [
        fn("get_stock_price", "Get the latest trading price for a stock ticker.",
           {"ticker": s("Ticker symbol, e.g. AAPL")}, ("ticker",)),
        fn("get_price_history", "Get a stock's price history over a period.",
           {"ticker": s(), "range": s("", ["1d", "5d", "1mo", "6mo", "1y", "5y"])}, ("ticker", "range")),
    ],
    "flights": [
        fn("search_flights", "Search available flights.",
           {"origin": s("City or airport code"), "destination": s("City or airport code"),
            "departure_date": s(), "passengers": i("", 1, 9),
            "cabin": s("", ["economy", "premium_economy", "business", "first"])},
           ("origin", "destination", "departure_date")),
        fn("get_flight_status", "Get live status of a flight.", {"flight_number": s()}, ("flight_number",)),
    ],
    "hotels": [
        fn("search_hotels", "Find hotels with availability in a city.",
           {"city": s(), "check_in": s(), "check_out": s(), "guests": i("", 1, 10),
            "max_price_per_night": num("In the user's currency")},
           ("city", "check_in", "check_out")),
        fn("get_hotel_reviews", "Get a summary of guest reviews for a hotel.", {"hotel_name": s()},
           ("hotel_name",)),
    ],
    "orders": [
        fn("get_order_status", "Look up the status of a customer's order.", {"order_id": s()}, ("order_id",)),
        fn("list_orders", "List the customer's recent orders.",
           {"limit": i("", 1, 50), "status": s("", ["processing", "shipped", "delivered", "cancelled"])}),
    ],
    "support": [
        fn("create_ticket", "Open a customer support ticket.",
           {"summary": s("Short description of the problem"), "priority": s("", ["low", "normal", "urgent"])},
           ("summary",)),
        fn("request_refund", "Request a refund for an order.", {"order_id": s(), "reason": s()},
           ("order_id", "reason")),
        fn("get_ticket_status", "Get the status of an existing support ticket.", {"ticket_id": s()},
           ("ticket_id",)),
    ],
    "account": [
        fn("send_password_reset", "Send a password reset link to the email on file.",
           {"email": s("Account email address")}, ("email",)),
        fn("unlock_account", "Unlock a user account locked after failed sign-ins.", {"username": s()},
           ("username",)),
    ],
    "music": [
        fn("play_music", "Play a song, artist, album or playlist.",
           {"query": s("What to play"), "shuffle": b()}, ("query",)),
        fn("set_volume", "Set the playback volume.", {"level": i("Percent", 0, 100)}, ("level",)),
        fn("skip_track", "Skip to the next track.", {}),
    ],
    "lights": [
        fn("set_lights", "Control the smart lights in a room.",
           {"room": s(), "power": s("", ["on", "off"]), "brightness": i("Percent", 0, 100),
            "color": s("Color name")},
           ("room",)),
    ],
    "thermostat": [
        fn("set_thermostat", "Set the target temperature of the home thermostat.",
           {"temperature": num("Degrees in the thermostat's unit"),
            "mode": s("", ["heat", "cool", "auto", "off"])},
           ("temperature",)),
        fn("get_thermostat_status", "Read the thermostat's current temperature, target and mode.", {}),
    ],
    "translation": [
        fn("translate_text", "Translate text into another language.",
           {"text": s(), "target_language": s("Language name, e.g. French"),
            "source_language": s("Omit to auto-detect")},
           ("text", "target_language")),
        fn("detect_language", "Detect which language a text is written in.", {"text": s()}, ("text",)),
    ],
    "dictionary": [
        fn("define_word", "Look up the dictionary definitions of a word.",
           {"word": s(), "language": s()}, ("word",)),
        fn("find_synonyms", "Find synonyms for a word.", {"word": s(), "limit": i("", 1, 30)}, ("word",)),
    ],
    "news": [
        fn("get_top_headlines", "Get today's top news headlines.",
           {"category": s("", ["world", "business", "technology", "science", "health", "sports",
                                "entertainment"]),
            "country": s("Two-letter country code")}),
        fn("search_news", "Search recent news articles.", {"query": s(), "days_back": i("", 1, 30)},
           ("query",)),
    ],
    "maps": [
        fn("get_directions", "Get a route between two places.",
           {"origin": s(), "destination": s(), "mode": s("", ["driving", "walking", "transit", "cycling"])},
           ("origin", "destination")),
        fn("find_places_nearby", "Find places of a given type near a location.",
           {"place_type": s("e.g. pharmacy, cafe"), "near": s(), "radius_km": num()},
           ("place_type", "near")),
    ],
    "restaurants": [
        fn("search_restaurants", "Search restaurants in a city.",
           {"city": s(), "cuisine": s(), "price": s("", ["$", "$$", "$$$", "$$$$"])}, ("city",)),
        fn("reserve_table", "Reserve a table at a restaurant.",
           {"restaurant_name": s(), "date": s(), "time": s(), "party_size": i("", 1, 20)},
           ("restaurant_name", "date", "time", "party_size")),
    ],
    "files": [
        fn("search_files", "Search the user's files by name and content.",
           {"query": s(), "file_type": s("", ["pdf", "docx", "xlsx", "pptx", "txt", "any"]), "folder": s()},
           ("query",)),
        fn("get_file_info", "Get size, owner and modification date of a file.", {"path": s()}, ("path",)),
    ],
    "database": [
        fn("run_sql", "Run a read-only SQL query and return the rows.",
           {"sql": s(), "database": s("", ["analytics", "production_replica", "billing"])}, ("sql",)),
        fn("describe_table", "Show the columns and types of a table.",
           {"table": s(), "database": s("", ["analytics", "production_replica", "billing"])}, ("table",)),
    ],
    "crm": [
        fn("find_customer", "Find a customer record in the CRM.",
           {"query": s("Name, email or phone number")}, ("query",)),
        fn("add_customer_note", "Attach a note to a customer record.", {"customer_id": s(), "note": s()},
           ("customer_id", "note")),
    ],
    "shipping": [
        fn("track_shipment", "Track a parcel by tracking number.",
           {"tracking_number": s(), "carrier": s("", ["ups", "fedex", "usps", "dhl", "other"])},
           ("tracking_number",)),
    ],
    "sports": [
        fn("get_live_score", "Get the live or latest score for a team's game.", {"team": s()}, ("team",)),
        fn("get_league_standings", "Get the standings table of a league.",
           {"league": s(), "season": s("e.g. 2023-24")}, ("league",)),
    ],
    "recipes": [
        fn("find_recipes", "Find recipes that use the given ingredients.",
           {"ingredients": arr({"type": "string"}),
            "diet": s("", ["none", "vegetarian", "vegan", "gluten_free", "keto"]),
            "max_minutes": i("Total time limit", 5, 600)},
           ("ingredients",)),
    ],
    "timezones": [
        fn("get_local_time", "Get the current local time in a city.", {"city": s()}, ("city",)),
        fn("convert_timezone", "Convert a time from one city's time zone to another's.",
           {"time": s(), "from_city": s(), "to_city": s()}, ("time", "from_city", "to_city")),
    ],
    "exchanges": [
        fn("check_return_eligibility", "Check whether an order can still be returned or exchanged.",
           {"order_id": s()}, ("order_id",)),
        fn("start_exchange", "Start an exchange of an item for a different size or color.",
           {"order_id": s(), "item": s(), "new_size": s(), "new_color": s()}, ("order_id", "item")),
    ],
    "banking": [
        fn("get_account_balance", "Get the balance of one of the user's accounts.",
           {"account": s("", ["checking", "savings", "credit"])}, ("account",)),
        fn("transfer_funds", "Move money between the user's own accounts.",
           {"from_account": s("", ["checking", "savings"]), "to_account": s("", ["checking", "savings"]),
            "amount": num(minimum=0.01)},
           ("from_account", "to_account", "amount")),
    ],
    "sms": [
        fn("send_text_message", "Send an SMS text message.", {"phone_number": s(), "message": s()},
           ("phone_number", "message")),
    ],
    "notes": [
        fn("create_note", "Save a note in the user's notes app.", {"title": s(), "content": s()},
           ("content",)),
    ],
    "rides": [
        fn("request_ride", "Request a ride-hailing car.",
           {"pickup": s(), "dropoff": s(), "ride_type": s("", ["standard", "xl", "premium"])},
           ("pickup", "dropoff")),
    ],
}

TOOLS: dict[str, Json] = {t["function"]["name"]: t for ts in FAMILIES.values() for t in ts}

# --------------------------------------------------------------------------- message helpers

HELPFUL = "You are a helpful assistant."
CONCISE = "You are a concise assistant. Use the available tools when they help."
HOME = "You are the voice assistant of a smart home. Keep answers short."
TRAVEL = "You are a travel assistant. Help the user plan trips and answer travel questions."
SHOP = "You are the customer service assistant for Northwind Outfitters, an online outdoor-gear store."
IT = "You are the IT helpdesk bot for Contoso. Be polite and precise."
FINANCE = "You are a personal finance assistant. Never give investment advice as fact."
DATA = "You are a data assistant with read-only access to the company databases."
COOK = "You are a friendly cooking assistant."
OFFICE = "You are an executive assistant. You manage email, calendar and tasks for the user."


def u(text: str) -> Json:
    return {"role": "user", "content": text}


def a(text: str) -> Json:
    return {"role": "assistant", "content": text}


def call_msg(name: str, args: Json, call_id: str) -> Json:
    fc = {"name": name, "arguments": json.dumps(args, ensure_ascii=False)}
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": fc}]}


def result_msg(result: Any, call_id: str) -> Json:
    content = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def exchange(request: str, name: str, args: Json, result: Any, answer: str) -> list[Json]:
    """A finished earlier turn: request, call, result, text answer."""
    return [u(request), call_msg(name, args, "call_1"), result_msg(result, "call_1"), a(answer)]


def C(group: str, text: str, name: str, args: Json, sys: str | None = None, x: tuple[str, ...] = (),
      hist: list[Json] | None = None) -> Json:
    return {"group": group, "text": text, "call": (name, args), "sys": sys, "x": x, "hist": hist or []}


def N(group: str, text: str, tools: tuple[str, ...] = (), sys: str | None = None,
      hist: list[Json] | None = None) -> Json:
    return {"group": group, "text": text, "tools": tools, "sys": sys, "hist": hist or []}


def A(group: str, text: str, rounds: list[tuple[str, Json, Any]], sys: str | None = None,
      x: tuple[str, ...] = (), hist: list[Json] | None = None) -> Json:
    return {"group": group, "text": text, "rounds": rounds, "sys": sys, "x": x, "hist": hist or []}


# --------------------------------------------------------------------------- "call" cases

CALLS: list[Json] = [
    # weather
    C("weather", "What's the weather like in Lisbon right now?", "get_current_weather",
      {"location": "Lisbon"},
      sys=HELPFUL),
    C("weather", "yo is it snowing in denver", "get_current_weather", {"location": "denver"},
      x=("play_music",)),
    C("weather", "Could you give me the 5-day forecast for Nairobi, please?", "get_weather_forecast",
      {"location": "Nairobi", "days": 5}),
    C("weather", "Current conditions in Toronto, in Fahrenheit please (imperial units).",
      "get_current_weather",
      {"location": "Toronto", "units": "imperial"}, sys=CONCISE),
    C("weather", "Yeah, what will the weather be like there over the next 3 days?", "get_weather_forecast",
      {"location": "Reykjavik", "days": 3}, sys=TRAVEL,
      hist=[u("I'm flying to Reykjavik on Thursday for a conference."),
            a("That sounds exciting! Is there anything I can help you prepare?")]),
    C("weather", "I'm about to head out for a run in Melbourne. How's the weather out there at the moment?",
      "get_current_weather", {"location": "Melbourne"}, x=("calculate", "send_email")),
    C("weather", "wether in Buenos Aires??", "get_current_weather", {"location": "Buenos Aires"},
      x=("get_local_time",)),
    # math
    C("math", "Calculate (4512 - 380) * 12", "calculate", {"expression": "(4512 - 380) * 12"}),
    C("math", "quick one: 1234 * 5678", "calculate", {"expression": "1234 * 5678"}, x=("get_stock_price",)),
    C("math", "Can you find the average of these test scores: 88, 92, 75, 64, 99?", "describe_numbers",
      {"numbers": [88, 92, 75, 64, 99], "statistic": "mean"}, sys=HELPFUL),
    C("math", "median of 3, 19, 7, 42, 8, 15 pls", "describe_numbers",
      {"numbers": [3, 19, 7, 42, 8, 15], "statistic": "median"}),
    C("math", "I need the square root of 2 times pi, roughly... actually just compute sqrt(2) * 3.14159",
      "calculate", {"expression": "sqrt(2) * 3.14159"}),
    C("math", "Please evaluate 2^10 - 24 for me so I can check my homework answer.", "calculate",
      {"expression": "2^10 - 24"}, sys="You are a tutoring assistant for high-school students."),
    C("math", "What's the standard deviation of 10, 12, 23, 23, 16, 23, 21, 16?", "describe_numbers",
      {"numbers": [10, 12, 23, 23, 16, 23, 21, 16], "statistic": "stdev"}, x=("convert_units",)),
    # units
    C("units", "How many kilometers is 26.2 miles?", "convert_units",
      {"value": 26.2, "from_unit": "miles", "to_unit": "kilometers"}),
    C("units", "convert 350 fahrenheit to celsius", "convert_units",
      {"value": 350, "from_unit": "fahrenheit", "to_unit": "celsius"}, sys=COOK),
    C("units", "My recipe says 500 grams of flour but my scale only does ounces. Can you convert grams to "
      "ounces for me?", "convert_units", {"value": 500, "from_unit": "grams", "to_unit": "ounces"},
      x=("find_recipes",)),
    C("units", "How many liters are in 3 gallons?", "convert_units",
      {"value": 3, "from_unit": "gallons", "to_unit": "liters"}, x=("get_current_weather", "calculate")),
    C("units", "Hey, what's 120 km/h in mph?", "convert_units",
      {"value": 120, "from_unit": "km/h", "to_unit": "mph"}),
    # currency
    C("currency", "Convert 250 EUR to GBP", "convert_currency",
      {"amount": 250, "from_currency": "EUR", "to_currency": "GBP"}),
    C("currency", "what's the USD to JPY rate today", "get_exchange_rate", {"base": "USD", "quote": "JPY"},
      sys=FINANCE),
    C("currency", "I have 1,200 CAD left over from my trip, how much is that in AUD?", "convert_currency",
      {"amount": 1200, "from_currency": "CAD", "to_currency": "AUD"}, sys=TRAVEL, x=("search_hotels",)),
    C("currency", "How much is 45.50 CHF in USD?", "convert_currency",
      {"amount": 45.5, "from_currency": "CHF", "to_currency": "USD"}, x=("get_stock_price",)),
    C("currency", "Hi! Could you tell me the current exchange rate from GBP to INR? Thanks a lot.",
      "get_exchange_rate", {"base": "GBP", "quote": "INR"}),
    # email
    C("email", 'Send an email to priya.nair@example.com with the subject "Q3 deck" and the body "Attached is '
      'the latest version, let me know what you think."', "send_email",
      {"to": "priya.nair@example.com", "subject": "Q3 deck",
       "body": "Attached is the latest version, let me know what you think."}, sys=OFFICE),
    C("email", "email tom@acme.io: running 10 min late, start without me", "send_email",
      {"to": "tom@acme.io", "body": "running 10 min late, start without me"}, x=("set_timer",)),
    C("email", "Do I have any unread emails about the landlord? Search for 'landlord', unread only.",
      "search_inbox", {"query": "landlord", "unread_only": True}),
    C("email", "Search my inbox for 'invoice 2291'", "search_inbox", {"query": "invoice 2291"},
      x=("search_files", "create_note")),
    C("email", "Please email hr@company.com and cc dana.lee@company.com. Body: I'll be out sick today.",
      "send_email", {"to": "hr@company.com", "cc": "dana.lee@company.com", "body": "I'll be out sick today."},
      sys=HELPFUL),
    # calendar
    C("calendar", "Put 'Dentist' on my calendar for 2024-11-05 at 14:30.", "create_calendar_event",
      {"title": "Dentist", "date": "2024-11-05", "start_time": "14:30"}),
    C("calendar", "What do I have on Friday?", "list_calendar_events", {"date": "Friday"}, sys=OFFICE),
    C("calendar", "schedule a 45 minute 'Project sync' tomorrow at 10am with maria@corp.com and li@corp.com",
      "create_calendar_event",
      {"title": "Project sync", "date": "tomorrow", "start_time": "10am", "duration_minutes": 45,
       "attendees": ["maria@corp.com", "li@corp.com"]}, x=("send_email",)),
    C("calendar", "Is my afternoon free? Can you show me today's events?", "list_calendar_events",
      {"date": "today"}, x=("get_current_weather",)),
    C("calendar", "Add an event called Mom's birthday dinner on March 3 at 7pm", "create_calendar_event",
      {"title": "Mom's birthday dinner", "date": "March 3", "start_time": "7pm"}),
    # reminders
    C("reminders", "Set a timer for 12 minutes", "set_timer", {"duration": 12, "unit": "minutes"}, sys=HOME),
    C("reminders", "timer 30 seconds for the plank, label it plank", "set_timer",
      {"duration": 30, "unit": "seconds", "label": "plank"}),
    C("reminders", "Remind me to call the vet tomorrow at 9am", "create_reminder",
      {"text": "call the vet", "remind_at": "tomorrow at 9am"}, x=("add_todo", "send_text_message")),
    C("reminders", "Can you set a 2 hour timer labeled 'laundry'?", "set_timer",
      {"duration": 2, "unit": "hours", "label": "laundry"}),
    C("reminders", "remind me at 6pm to take the chicken out of the freezer", "create_reminder",
      {"text": "take the chicken out of the freezer", "remind_at": "6pm"}, sys=HOME, x=("set_lights",)),
    # todo
    C("todo", "Add 'renew passport' to my to-do list, high priority.", "add_todo",
      {"title": "renew passport", "priority": "high"}),
    C("todo", "What's still open on my todo list?", "list_todos", {"status": "open"}, sys=OFFICE),
    C("todo", "Mark task 42 as done.", "complete_todo", {"todo_id": 42}, x=("create_reminder",)),
    C("todo", "add buy birthday card to todos, due friday", "add_todo",
      {"title": "buy birthday card", "due_date": "friday"}),
    C("todo", "I paid the electricity bill this morning, tick it off", "complete_todo", {"todo_id": 7},
      hist=[u("show me my tasks"),
            a("You have 3 open tasks: #7 Pay electricity bill, #8 Book car service, #9 Email Jenna about the "
              "offsite.")]),
    # search
    C("search", 'Search the web for "best hiking trails near Boulder"', "web_search",
      {"query": "best hiking trails near Boulder"}),
    C("search", "can u google rust async runtime comparison 2024 and just give me like 3 results",
      "web_search", {"query": "rust async runtime comparison 2024", "num_results": 3}, x=("calculate",)),
    C("search", "Look this up online for me: who won the 2023 Booker Prize", "web_search",
      {"query": "who won the 2023 Booker Prize"}),
    C("search", "Search for 'EU AI Act enforcement timeline'.", "web_search",
      {"query": "EU AI Act enforcement timeline"},
      sys="You are a research assistant. Use web search for anything that may have changed recently."),
    # stocks
    C("stocks", "What's AAPL trading at?", "get_stock_price", {"ticker": "AAPL"}, sys=FINANCE),
    C("stocks", "price of NVDA rn", "get_stock_price", {"ticker": "NVDA"}, x=("get_top_headlines",)),
    C("stocks", "Show me how MSFT has done over the past year (1y)", "get_price_history",
      {"ticker": "MSFT", "range": "1y"}),
    C("stocks", "Could you pull the 5d chart for TSLA?", "get_price_history",
      {"ticker": "TSLA", "range": "5d"},
      x=("convert_currency",)),
    C("stocks", "Quick check on the share price of ticker SHOP please, thinking about selling.",
      "get_stock_price", {"ticker": "SHOP"}),
    # flights
    C("flights", "Find flights from Boston to Lisbon on 2024-09-14", "search_flights",
      {"origin": "Boston", "destination": "Lisbon", "departure_date": "2024-09-14"}, sys=TRAVEL),
    C("flights", "Is flight BA 287 on time?", "get_flight_status", {"flight_number": "BA 287"},
      x=("get_current_weather",)),
    C("flights", "I need 2 business class seats from SFO to NRT on June 3", "search_flights",
      {"origin": "SFO", "destination": "NRT", "departure_date": "June 3", "passengers": 2,
       "cabin": "business"}),
    C("flights", "status of UA1549 pls", "get_flight_status", {"flight_number": "UA1549"}),
    C("flights", "From Chicago, leaving April 22. Can you search flights for the two of us?",
      "search_flights",
      {"origin": "Chicago", "destination": "Rome", "departure_date": "April 22", "passengers": 2}, sys=TRAVEL,
      x=("search_hotels",),
      hist=[u("My sister and I want to visit Rome in the spring."),
            a("Lovely! Where would you be flying from, and when?")]),
    # hotels
    C("hotels", "Find me a hotel in Kyoto from 2024-10-02 to 2024-10-06", "search_hotels",
      {"city": "Kyoto", "check_in": "2024-10-02", "check_out": "2024-10-06"}),
    C("hotels", "hotels in Austin, checking in Friday, out Sunday, 3 guests, under 180 a night",
      "search_hotels",
      {"city": "Austin", "check_in": "Friday", "check_out": "Sunday", "guests": 3,
       "max_price_per_night": 180},
      x=("search_flights",)),
    C("hotels", "What are people saying about the Hotel Arts Barcelona? Pull up the reviews.",
      "get_hotel_reviews", {"hotel_name": "Hotel Arts Barcelona"}, sys=TRAVEL),
    C("hotels", "Any hotels in Edinburgh for Dec 28 to Jan 2?", "search_hotels",
      {"city": "Edinburgh", "check_in": "Dec 28", "check_out": "Jan 2"}, x=("get_weather_forecast",)),
    # orders
    C("orders", "Where's my order A10492?", "get_order_status", {"order_id": "A10492"}, sys=SHOP),
    C("orders", "Show me my last 3 orders", "list_orders", {"limit": 3}),
    C("orders", "hi, i ordered a tent last week, order number 558213, has it shipped yet?",
      "get_order_status",
      {"order_id": "558213"}, sys=SHOP, x=("request_refund",)),
    C("orders", "Can you list my cancelled orders?", "list_orders", {"status": "cancelled"}, sys=SHOP),
    C("orders", "status for order ORD-77120 please", "get_order_status", {"order_id": "ORD-77120"},
      x=("track_shipment", "find_customer")),
    # support
    C("support", "Please open an urgent ticket: our checkout page returns a 502 error", "create_ticket",
      {"summary": "our checkout page returns a 502 error", "priority": "urgent"}),
    C("support", "I want a refund for order 99812. Reason: the blender arrived cracked.", "request_refund",
      {"order_id": "99812", "reason": "the blender arrived cracked"}, sys=SHOP),
    C("support", "Any update on ticket TCK-4410?", "get_ticket_status", {"ticket_id": "TCK-4410"}),
    C("support", "file a support ticket saying 'cannot export reports to CSV'", "create_ticket",
      {"summary": "cannot export reports to CSV"}, x=("search_files",)),
    C("support", "Hello, I was charged twice for order 30017. Can I get a refund? Reason: duplicate charge.",
      "request_refund", {"order_id": "30017", "reason": "duplicate charge"}, sys=SHOP,
      x=("get_order_status",)),
    # account
    C("account", "I forgot my password, my email is j.okafor@gmail.com", "send_password_reset",
      {"email": "j.okafor@gmail.com"}),
    C("account", "My account got locked, username is mkwan88", "unlock_account", {"username": "mkwan88"},
      sys=IT),
    C("account", "Please send a reset link to alex.r@northwind.com", "send_password_reset",
      {"email": "alex.r@northwind.com"}, sys=IT, x=("create_ticket",)),
    C("account", "cant log in, too many attempts i guess. user: delta_ops. unlock pls", "unlock_account",
      {"username": "delta_ops"}),
    # music
    C("music", "Play some Miles Davis", "play_music", {"query": "Miles Davis"}, sys=HOME),
    C("music", "turn the volume up to 70", "set_volume", {"level": 70}, x=("set_lights",)),
    C("music", "skip this song", "skip_track", {}),
    C("music", "Put on my 'Sunday Morning' playlist on shuffle", "play_music",
      {"query": "Sunday Morning", "shuffle": True}, x=("set_thermostat",)),
    C("music", "Ugh, this one's terrible. Next!", "skip_track", {}, sys=HOME),
    C("music", "volume 25 please, the baby's sleeping", "set_volume", {"level": 25}),
    # lights
    C("lights", "Turn off the bedroom lights", "set_lights", {"room": "bedroom", "power": "off"}, sys=HOME),
    C("lights", "dim the living room to 30%", "set_lights", {"room": "living room", "brightness": 30},
      x=("play_music", "set_thermostat")),
    C("lights", "Make the kitchen lights blue", "set_lights", {"room": "kitchen", "color": "blue"}),
    C("lights", "Could you switch on the porch light? Someone's coming over.", "set_lights",
      {"room": "porch", "power": "on"}, sys=HOME, x=("set_timer",)),
    # thermostat
    C("thermostat", "Set the thermostat to 21 degrees", "set_thermostat", {"temperature": 21}, sys=HOME),
    C("thermostat", "It's freezing in here, heat to 72 please", "set_thermostat",
      {"temperature": 72, "mode": "heat"}, x=("set_lights",)),
    C("thermostat", "What's the thermostat set to right now?", "get_thermostat_status", {}),
    C("thermostat", "switch the AC on, cool mode, 68", "set_thermostat", {"temperature": 68, "mode": "cool"},
      sys=HOME, x=("play_music",)),
    # translation
    C("translation", 'Translate "Where is the train station?" into German', "translate_text",
      {"text": "Where is the train station?", "target_language": "German"}, sys=TRAVEL),
    C("translation", "how do you say 'thank you very much' in Japanese", "translate_text",
      {"text": "thank you very much", "target_language": "Japanese"}),
    C("translation", "What language is this: 'Dziękuję za pomoc'?", "detect_language",
      {"text": "Dziękuję za pomoc"}, x=("define_word",)),
    C("translation", "Translate this Spanish to English: 'La reunión se ha aplazado hasta el lunes.'",
      "translate_text", {"text": "La reunión se ha aplazado hasta el lunes.", "target_language": "English",
                         "source_language": "Spanish"}),
    C("translation", "Can you put 'Your order will be ready at noon' into French for me?", "translate_text",
      {"text": "Your order will be ready at noon", "target_language": "French"},
      sys="You help a small bakery reply to its international customers.", x=("send_email",)),
    # dictionary
    C("dictionary", "Define 'sonder'", "define_word", {"word": "sonder"}),
    C("dictionary", "what does ephemeral mean", "define_word", {"word": "ephemeral"}, x=("translate_text",)),
    C("dictionary", "Give me 5 synonyms for 'happy'", "find_synonyms", {"word": "happy", "limit": 5}),
    C("dictionary", "I keep using the word 'important' in my essay. What else could I say instead?",
      "find_synonyms", {"word": "important"}, sys="You are a writing coach for university students."),
    # news
    C("news", "What are today's top technology headlines?", "get_top_headlines", {"category": "technology"}),
    C("news", "Show me the top business news in Germany, country code DE", "get_top_headlines",
      {"category": "business", "country": "DE"}, x=("translate_text",)),
    C("news", "Any news about the Artemis mission from the last 3 days?", "search_news",
      {"query": "Artemis mission", "days_back": 3}),
    C("news", "headlines pls", "get_top_headlines", {}, sys=CONCISE),
    C("news", "search the news for 'semiconductor tariffs'", "search_news",
      {"query": "semiconductor tariffs"},
      x=("get_stock_price",)),
    # maps
    C("maps", "How do I get from Union Station to the Art Institute of Chicago by transit?", "get_directions",
      {"origin": "Union Station", "destination": "the Art Institute of Chicago", "mode": "transit"},
      sys=TRAVEL),
    C("maps", "walking directions from Hotel Lutetia to the Louvre Museum", "get_directions",
      {"origin": "Hotel Lutetia", "destination": "the Louvre Museum", "mode": "walking"}),
    C("maps", "Find a pharmacy near 5th Ave and 42nd St", "find_places_nearby",
      {"place_type": "pharmacy", "near": "5th Ave and 42nd St"}, x=("request_ride",)),
    C("maps", "Is there a gas station within 2 km of Exit 14? Running on fumes here", "find_places_nearby",
      {"place_type": "gas station", "near": "Exit 14", "radius_km": 2}),
    C("maps", "Route from Leeds to York, driving", "get_directions",
      {"origin": "Leeds", "destination": "York", "mode": "driving"}, x=("get_current_weather",)),
    # restaurants
    C("restaurants", "Find Thai restaurants in Portland", "search_restaurants",
      {"city": "Portland", "cuisine": "Thai"}),
    C("restaurants", "Book a table for 4 at Nopa on 2024-08-17 at 19:30", "reserve_table",
      {"restaurant_name": "Nopa", "date": "2024-08-17", "time": "19:30", "party_size": 4},
      x=("create_calendar_event",)),
    C("restaurants", "cheap eats in Bangkok? like $ level", "search_restaurants",
      {"city": "Bangkok", "price": "$"},
      sys=TRAVEL),
    C("restaurants", "Seattle, and we love Italian.", "search_restaurants",
      {"city": "Seattle", "cuisine": "Italian"},
      sys="You are a dining concierge.",
      hist=[u("Can you recommend somewhere for a date night?"),
            a("Sure! Which city are you in, and do you have any cuisine preferences?")]),
    C("restaurants", "reserve Chez Panisse for two tomorrow at 8pm", "reserve_table",
      {"restaurant_name": "Chez Panisse", "date": "tomorrow", "time": "8pm", "party_size": 2}),
    # files
    C("files", "Find the PDF with the 2023 tax return", "search_files",
      {"query": "2023 tax return", "file_type": "pdf"}),
    C("files", "where's the xlsx called budget_final", "search_files",
      {"query": "budget_final", "file_type": "xlsx"},
      x=("search_inbox",)),
    C("files", "Search my Documents folder for 'lease agreement'", "search_files",
      {"query": "lease agreement", "folder": "Documents"}),
    C("files", "How big is /shared/design/logo_v3.png and when was it last changed?", "get_file_info",
      {"path": "/shared/design/logo_v3.png"}, sys=HELPFUL, x=("run_sql",)),
    # database
    C("database", "Run this on analytics: SELECT COUNT(*) FROM signups WHERE created_at >= '2024-01-01'",
      "run_sql",
      {"sql": "SELECT COUNT(*) FROM signups WHERE created_at >= '2024-01-01'", "database": "analytics"},
      sys=DATA),
    C("database", "What columns does the orders table have?", "describe_table", {"table": "orders"},
      sys=DATA),
    C("database", "How many rows are in invoices? Run SELECT count(*) FROM invoices on billing.", "run_sql",
      {"sql": "SELECT count(*) FROM invoices", "database": "billing"}),
    C("database", "describe the users table in production_replica", "describe_table",
      {"table": "users", "database": "production_replica"}, x=("find_customer",)),
    C("database", "execute `SELECT name, plan FROM accounts ORDER BY mrr DESC LIMIT 10`", "run_sql",
      {"sql": "SELECT name, plan FROM accounts ORDER BY mrr DESC LIMIT 10"}, x=("calculate", "search_files")),
    # crm
    C("crm", "Look up the customer with email hannah@brightlabs.co", "find_customer",
      {"query": "hannah@brightlabs.co"}),
    C("crm", "pull up Diego Fernández in the CRM", "find_customer", {"query": "Diego Fernández"},
      sys="You are a sales assistant with access to the CRM."),
    C("crm", "Add a note to customer C-20931: 'Interested in annual plan, follow up in May'",
      "add_customer_note",
      {"customer_id": "C-20931", "note": "Interested in annual plan, follow up in May"}, x=("send_email",)),
    C("crm", "Who's the account behind phone number +1 415 555 0199?", "find_customer",
      {"query": "+1 415 555 0199"}),
    # shipping
    C("shipping", "Track 1Z999AA10123456784", "track_shipment", {"tracking_number": "1Z999AA10123456784"}),
    C("shipping", "where's my fedex package, tracking 7725 1234 9981", "track_shipment",
      {"tracking_number": "7725 1234 9981", "carrier": "fedex"}, x=("get_order_status",)),
    C("shipping", "Can you check on DHL shipment JD014600003828 for me?", "track_shipment",
      {"tracking_number": "JD014600003828", "carrier": "dhl"}, sys=HELPFUL),
    C("shipping", "yes please, it's USPS", "track_shipment",
      {"tracking_number": "9400111899223847560012", "carrier": "usps"},
      hist=[u("The seller emailed me a tracking number: 9400111899223847560012."),
            a("Great! Would you like me to check where the package is?")]),
    # sports
    C("sports", "What's the score of the Lakers game?", "get_live_score", {"team": "Lakers"}),
    C("sports", "Premier League table please", "get_league_standings", {"league": "Premier League"},
      x=("get_top_headlines",)),
    C("sports", "how are the Yankees doing right now, are they winning??", "get_live_score",
      {"team": "Yankees"}),
    C("sports", "Show the NBA standings for the 2022-23 season", "get_league_standings",
      {"league": "NBA", "season": "2022-23"}, sys=CONCISE),
    # recipes
    C("recipes", "What can I cook with chicken, rice and broccoli?", "find_recipes",
      {"ingredients": ["chicken", "rice", "broccoli"]}, sys=COOK),
    C("recipes", "vegan recipes using chickpeas, under 30 minutes", "find_recipes",
      {"ingredients": ["chickpeas"], "diet": "vegan", "max_minutes": 30}, x=("convert_units",)),
    C("recipes", "I've got eggs and spinach. Anything gluten_free I could make?", "find_recipes",
      {"ingredients": ["eggs", "spinach"], "diet": "gluten_free"}),
    C("recipes", "Find me a recipe with salmon and lemon", "find_recipes",
      {"ingredients": ["salmon", "lemon"]},
      sys=COOK, x=("set_timer",)),
    # timezones
    C("timezones", "What time is it in Sydney?", "get_local_time", {"city": "Sydney"}),
    C("timezones", "If it's 3pm in New York, what time is it in Berlin?", "convert_timezone",
      {"time": "3pm", "from_city": "New York", "to_city": "Berlin"}, x=("create_calendar_event",)),
    C("timezones", "current time in Kathmandu pls", "get_local_time", {"city": "Kathmandu"}, sys=TRAVEL),
    C("timezones", "My call is at 09:00 London time. What's that in Singapore?", "convert_timezone",
      {"time": "09:00", "from_city": "London", "to_city": "Singapore"}, sys=OFFICE),
    # exchanges
    C("exchanges", "Can I still return order 48213?", "check_return_eligibility", {"order_id": "48213"},
      sys=SHOP),
    C("exchanges", "I'd like to exchange the running shoes from order 48213 for a size 10", "start_exchange",
      {"order_id": "48213", "item": "running shoes", "new_size": "10"}, sys=SHOP),
    C("exchanges", "swap the hoodie in order W-5590 for the green one", "start_exchange",
      {"order_id": "W-5590", "item": "hoodie", "new_color": "green"},
      x=("get_order_status", "request_refund")),
    C("exchanges", "the jeans in order 60221 are too small :( exchange them for a 34", "start_exchange",
      {"order_id": "60221", "item": "jeans", "new_size": "34"}),
    # banking
    C("banking", "What's my checking balance?", "get_account_balance", {"account": "checking"},
      sys="You are the assistant in the Riverside Bank app."),
    C("banking", "Move 500 from savings to checking", "transfer_funds",
      {"from_account": "savings", "to_account": "checking", "amount": 500}),
    C("banking", "how much do I owe on my credit card", "get_account_balance", {"account": "credit"},
      x=("convert_currency",)),
    C("banking", "Please transfer 1250.75 from checking into savings.", "transfer_funds",
      {"from_account": "checking", "to_account": "savings", "amount": 1250.75},
      sys="You are the assistant in the Riverside Bank app."),
    # sms
    C("sms", "Text +44 7700 900123: 'Landed, see you at arrivals'", "send_text_message",
      {"phone_number": "+44 7700 900123", "message": "Landed, see you at arrivals"},
      x=("get_flight_status",)),
    C("sms", "send a message to 555-0142 saying I'm outside", "send_text_message",
      {"phone_number": "555-0142", "message": "I'm outside"}),
    C("sms", "Can you text my neighbour at 0612345678 that the package is at my place?", "send_text_message",
      {"phone_number": "0612345678", "message": "the package is at my place"}, sys=HELPFUL,
      x=("send_email",)),
    # notes
    C("notes", "Make a note: the wifi password is tulip-42-river", "create_note",
      {"content": "the wifi password is tulip-42-river"}),
    C("notes", "Create a note titled 'Gift ideas' with: scarf for mom, lego for Sam", "create_note",
      {"title": "Gift ideas", "content": "scarf for mom, lego for Sam"}, x=("add_todo",)),
    C("notes", "jot this down: parking spot is level 3, row F", "create_note",
      {"content": "parking spot is level 3, row F"}, sys=CONCISE),
    # rides
    C("rides", "Get me a ride from 221 King St to SFO Terminal 2", "request_ride",
      {"pickup": "221 King St", "dropoff": "SFO Terminal 2"}),
    C("rides", "I need an XL from Central Station to Pier 39, we're six people with luggage", "request_ride",
      {"pickup": "Central Station", "dropoff": "Pier 39", "ride_type": "xl"}, x=("get_directions",)),
    C("rides", "book a premium car, pick up at the Marriott Downtown, drop off at 1 Market St",
      "request_ride",
      {"pickup": "the Marriott Downtown", "dropoff": "1 Market St", "ride_type": "premium"}, sys=TRAVEL),
]

# --------------------------------------------------------------------------- "no_call" cases

WEATHER = ("get_current_weather", "get_weather_forecast")
HOME_TOOLS = ("set_lights", "set_thermostat", "get_thermostat_status", "play_music")

NO_CALLS: list[Json] = [
    # weather
    N("general", "Who wrote Hamlet?", ("get_current_weather", "send_email")),
    N("weather", "I love rainy weather, honestly. It's so cozy to stay in and read.", WEATHER),
    N("weather", "Perfect, thanks! That's all I needed.", WEATHER, sys=HELPFUL,
      hist=exchange("Weather in Oslo?", "get_current_weather", {"location": "Oslo"},
                    {"temp_c": -3, "conditions": "light snow"},
                    "It's -3 °C in Oslo with light snow.")),
    N("weather", "Why is the sky blue?", WEATHER),
    N("weather", "What's the difference between weather and climate?", ("get_weather_forecast",),
      sys=CONCISE),
    # math
    N("math", "Why is dividing by zero undefined?", ("calculate",)),
    N("math", "hello there", ("calculate", "describe_numbers")),
    N("general", "Book me a flight to Madrid next week.", ("calculate", "get_current_weather")),
    N("math", "Is math discovered or invented? I'd love your take.", ("calculate",),
      sys="You are a tutoring assistant for high-school students."),
    # units
    N("units", "Is the metric system better than imperial? What do you think?", ("convert_units",)),
    N("units", "What unit is electrical resistance measured in?", ("convert_units", "calculate")),
    N("units", "lol my grandma still measures everything in 'handfuls'", ("convert_units",)),
    # currency
    N("currency", "Why does the Japanese yen fluctuate so much against the dollar?",
      ("get_exchange_rate", "convert_currency"), sys=FINANCE),
    N("currency", "I want to convert some money.", ("convert_currency",)),
    N("currency", "Cool, thank you!", ("convert_currency", "get_exchange_rate"),
      hist=exchange("Convert 60 USD to EUR", "convert_currency",
                    {"amount": 60, "from_currency": "USD", "to_currency": "EUR"},
                    {"result": 55.32, "rate": 0.922}, "60 USD is about 55.32 EUR at a rate of 0.922.")),
    # email
    N("email", "Can you help me write a polite email declining a job offer? Just draft it here, don't send "
      "anything yet.", ("send_email", "search_inbox"), sys=OFFICE),
    N("email", "What's the difference between CC and BCC?", ("send_email",)),
    N("email", "I get way too many newsletters. Email is exhausting sometimes.", ("search_inbox",)),
    N("email", "Hmm, let me think about what to say to him first. I'll get back to you.", ("send_email",),
      hist=[u("I need to email my landlord about the broken heater."),
            a("Sure. What's his email address, and what would you like the message to say?")]),
    # calendar
    N("calendar", "I hate Mondays, honestly.", ("list_calendar_events", "create_calendar_event")),
    N("calendar", "How many days are there in a leap year?", ("create_calendar_event",)),
    N("calendar", "Any tips for running shorter meetings?", ("list_calendar_events",), sys=OFFICE),
    # reminders
    N("reminders", "Good morning!", ("set_timer", "create_reminder"), sys=HOME),
    N("reminders", "What's the Pomodoro technique?", ("set_timer",)),
    N("reminders", "Remind me what we were talking about?", ("create_reminder",),
      hist=[u("What's a good way to learn Spanish vocabulary?"),
            a("Spaced repetition works well: short daily sessions with flashcards that come back just "
              "before you would forget them.")]),
    # todo
    N("todo", "Ugh, I have so much on my plate this week. Any tips for staying focused?",
      ("add_todo", "list_todos", "complete_todo")),
    N("todo", "thx", ("list_todos", "complete_todo"),
      hist=exchange("Mark task 3 as done", "complete_todo", {"todo_id": 3}, "Task #3 marked complete.",
                    "Done! Task #3 is marked complete.")),
    N("todo", "What's the Eisenhower matrix?", ("add_todo",)),
    # search
    N("search", "Tell me a joke.", ("web_search",)),
    N("search", "What can you do?", ("web_search", "calculate")),
    N("search", "Thanks so much, that was super helpful!", ("web_search",),
      hist=exchange("search for the Rijksmuseum opening hours", "web_search",
                    {"query": "Rijksmuseum opening hours"},
                    [{"title": "Rijksmuseum - Plan your visit", "snippet": "Open daily 9:00-17:00."}],
                    "The Rijksmuseum is open every day from 9:00 to 17:00.")),
    N("search", "Are you able to browse the internet, or do you use some kind of search tool?",
      ("web_search",)),
    # stocks
    N("stocks", "What is a P/E ratio?", ("get_stock_price", "get_price_history"), sys=FINANCE),
    N("stocks", "Should I put all my savings into one tech stock?", ("get_stock_price",), sys=FINANCE),
    N("stocks", "My uncle keeps talking about the stock market at dinner, it's so boring haha",
      ("get_stock_price",)),
    # flights
    N("flights", "What's the capital of Australia?", ("search_flights", "get_flight_status")),
    N("flights", "Do you think window or aisle seats are better on long flights?", ("search_flights",),
      sys=TRAVEL),
    N("flights", "I want to book a flight.", ("search_flights",), sys=TRAVEL),
    N("flights", "How long does jet lag usually last?", ("get_flight_status", "get_local_time")),
    # hotels
    N("hotels", "Can you recommend what to pack for a beach holiday?", ("search_hotels", "get_hotel_reviews"),
      sys=TRAVEL),
    N("hotels", "What's the difference between a hostel and a hotel?", ("search_hotels",)),
    N("hotels", "Great, I'll think about it and come back later. Bye!", ("search_hotels",),
      hist=exchange("hotels in Porto from May 3 to May 6", "search_hotels",
                    {"city": "Porto", "check_in": "May 3", "check_out": "May 6"},
                    [{"name": "Casa do Rio", "price": 98}, {"name": "Hotel Infante", "price": 142}],
                    "I found Casa do Rio at 98 per night and Hotel Infante at 142 per night.")),
    # orders
    N("orders", "Are you a real person or a bot?", ("get_order_status", "list_orders"), sys=SHOP),
    N("orders", "Order me a pizza", ("get_order_status", "list_orders")),
    N("orders", "I'm so excited about the new kayak I ordered, can't wait to take it out on the lake!",
      ("get_order_status",), sys=SHOP),
    # support
    N("support", "Thanks, you've been really helpful today!", ("create_ticket", "get_ticket_status"),
      sys=SHOP),
    N("support", "I just wanted to say the new dashboard looks great. Nice work.", ("create_ticket",)),
    N("support", "How do I write a good bug report?", ("create_ticket", "get_ticket_status")),
    N("support", "I'd like a refund please.", ("request_refund",), sys=SHOP),
    # account
    N("account", "What makes a strong password?", ("send_password_reset", "unlock_account"), sys=IT),
    N("account", "I want to reset my password.", ("send_password_reset",), sys=IT),
    N("account", "Is two-factor authentication really worth the hassle?", ("unlock_account",), sys=IT),
    # music
    N("music", "Who composed The Four Seasons?", ("play_music", "set_volume", "skip_track")),
    N("music", "I've been really into jazz lately. It's so relaxing after work.", ("play_music",)),
    N("music", "What's your favorite band?", ("play_music", "skip_track"), sys=HOME),
    # lights
    N("lights", "Why do LED bulbs last longer than incandescent ones?", ("set_lights",)),
    N("lights", "Hey, how's it going?", HOME_TOOLS, sys=HOME),
    N("general", "Lock the front door.", ("set_lights", "set_thermostat"), sys=HOME),
    # thermostat
    N("thermostat", "What's a comfortable room temperature for sleeping?", ("set_thermostat",
                                                                             "get_thermostat_status")),
    N("thermostat", "our heating bill was insane last winter lol", ("get_thermostat_status",), sys=HOME),
    N("thermostat", "Nice, thank you.", ("set_thermostat", "get_thermostat_status"), sys=HOME,
      hist=exchange("set the heat to 20", "set_thermostat", {"temperature": 20, "mode": "heat"},
                    {"ok": True, "target": 20, "mode": "heat"}, "Heating is set to 20 degrees.")),
    # translation
    N("translation", "Which is harder to learn, Mandarin or Japanese?",
      ("translate_text", "detect_language")),
    N("translation", "How many languages are spoken in India?", ("translate_text",)),
    N("translation", "Merci beaucoup !", ("translate_text",),
      hist=exchange("translate 'good luck tomorrow' to French", "translate_text",
                    {"text": "good luck tomorrow", "target_language": "French"},
                    {"translated_text": "bonne chance pour demain"},
                    "In French: « bonne chance pour demain ».")),
    # dictionary
    N("dictionary", "I love the word 'petrichor', it's such a pretty word.", ("define_word",)),
    N("dictionary", "Can you write me a short poem about autumn?", ("define_word", "find_synonyms")),
    N("dictionary", "Who decides which new words get added to dictionaries?", ("define_word",)),
    # news
    N("news", "I'm trying to read less news, it really stresses me out.",
      ("get_top_headlines", "search_news")),
    N("news", "Summarize the plot of 1984 by George Orwell.", ("search_news",)),
    N("news", "How do I tell whether a news source is reliable?", ("get_top_headlines",)),
    # maps
    N("maps", "What's the tallest mountain in Europe?", ("get_directions", "find_places_nearby")),
    N("maps", "I got lost three times yesterday haha, my sense of direction is terrible",
      ("get_directions",)),
    N("maps", "Can you give me directions?", ("get_directions",)),
    N("maps", "Is it safe to cycle in the rain?", ("get_directions", "get_current_weather")),
    # restaurants
    N("restaurants", "What's the difference between sushi and sashimi?", ("search_restaurants",)),
    N("general", "Call me a cab to the restaurant.", ("search_restaurants", "reserve_table")),
    N("restaurants", "How much should I tip at a restaurant in the US?", ("reserve_table",),
      sys="You are a dining concierge."),
    N("restaurants", "That dinner last night was amazing, best risotto I've ever had", ("search_restaurants",
                                                                                        "reserve_table")),
    # files
    N("files", "What's the difference between a PDF and a DOCX file?", ("search_files", "get_file_info")),
    N("files", "Delete all my old files.", ("search_files", "get_file_info")),
    N("files", "How should I organize my folders so I can actually find stuff?", ("search_files",)),
    # database
    N("database", "What's the difference between an inner join and a left join?",
      ("run_sql", "describe_table"),
      sys=DATA),
    N("database", "Drop the users table.", ("run_sql",), sys=DATA),
    N("database", "Thanks, that matches what I expected.", ("run_sql",), sys=DATA,
      hist=exchange("run SELECT count(*) FROM orders on analytics", "run_sql",
                    {"sql": "SELECT count(*) FROM orders", "database": "analytics"}, [{"count": 18234}],
                    "The orders table in analytics has 18,234 rows.")),
    # crm
    N("crm", "How should I handle an angry customer on the phone?", ("find_customer", "add_customer_note")),
    N("crm", "What does CRM stand for?", ("find_customer",)),
    N("crm", "Good afternoon! Hope your day is going well.", ("find_customer", "add_customer_note"),
      sys="You are a sales assistant with access to the CRM."),
    # shipping
    N("shipping", "Why does international shipping take so long?", ("track_shipment",)),
    N("shipping", "I need to track my package.", ("track_shipment",)),
    N("shipping", "The courier left my parcel in the rain again, so annoying.", ("track_shipment",)),
    # sports
    N("sports", "Who's the greatest basketball player of all time, in your opinion?",
      ("get_live_score", "get_league_standings")),
    N("sports", "How many players are on a soccer team?", ("get_league_standings",)),
    N("sports", "Man, what a game last night. I'm still buzzing!", ("get_live_score",)),
    # recipes
    N("recipes", "What's the difference between baking soda and baking powder?", ("find_recipes",), sys=COOK),
    N("recipes", "I burned the toast again lol", ("find_recipes",)),
    N("recipes", "Is it okay to refreeze chicken that has thawed?", ("find_recipes", "set_timer"), sys=COOK),
    # timezones
    N("timezones", "Why do we have daylight saving time?", ("get_local_time", "convert_timezone")),
    N("timezones", "Working with a team 9 hours ahead is exhausting.", ("convert_timezone",)),
    # exchanges
    N("exchanges", "Thanks, I'll think about whether I want a different size.", ("start_exchange",), sys=SHOP,
      hist=exchange("can I still return order 71120?", "check_return_eligibility", {"order_id": "71120"},
                    {"eligible": True, "return_by": "2024-07-14"},
                    "Yes, order 71120 can be returned or exchanged until 2024-07-14.")),
    N("exchanges", "How do I know which shoe size to pick between two sizes?", ("start_exchange",
                                                                               "check_return_eligibility")),
    N("exchanges", "Can I exchange something?", ("start_exchange",), sys=SHOP),
    # banking
    N("banking", "What's the difference between a Roth IRA and a traditional IRA?",
      ("get_account_balance", "transfer_funds"), sys=FINANCE),
    N("banking", "Pay my electricity bill.", ("get_account_balance", "transfer_funds")),
    N("banking", "How much should I keep in an emergency fund?", ("get_account_balance",),
      sys="You are the assistant in the Riverside Bank app."),
    # sms
    N("sms", "What does 'lol' actually stand for?", ("send_text_message",)),
    N("sms", "Text my mom.", ("send_text_message",)),
    # notes
    N("notes", "How do you take good notes in lectures?", ("create_note",)),
    N("notes", "What's your name?", ("create_note", "add_todo")),
    # rides
    N("rides", "Is it usually cheaper to drive or take a rideshare in a big city?", ("request_ride",)),
    N("rides", "I need a ride.", ("request_ride",)),
    # general / about the assistant
    N("general", "Which AI model are you, and who made you?", ("web_search", "get_current_weather")),
    N("general", "Can you remember things between our conversations?", ("create_note", "send_email")),
    N("general", "¿Qué tal? ¿Hablas español?", ("translate_text", "get_current_weather")),
    N("general", "ok", ("get_stock_price", "convert_currency", "web_search")),
    N("general", "What year did the Berlin Wall fall?", ("calculate", "set_timer", "play_music")),
    N("general", "Hi! I'm new here, just exploring what you can help with.",
      ("search_flights", "search_hotels", "get_local_time"), sys=TRAVEL),
    N("general", "Explain photosynthesis like I'm five.", ("convert_units", "find_recipes")),
]

# --------------------------------------------------------------------------- "after_tool" cases

AFTER: list[Json] = [
    # weather
    A("weather", "How's the weather in Vancouver today?",
      [("get_current_weather", {"location": "Vancouver"},
        {"location": "Vancouver, CA", "temp_c": 9, "conditions": "overcast", "humidity": 81,
         "wind_kph": 14})],
      sys=HELPFUL),
    A("weather", "Give me the 3-day forecast for Marrakech",
      [("get_weather_forecast", {"location": "Marrakech", "days": 3},
        {"days": [{"date": "2024-06-14", "high_c": 34, "low_c": 20, "conditions": "sunny"},
                  {"date": "2024-06-15", "high_c": 36, "low_c": 21, "conditions": "sunny"},
                  {"date": "2024-06-16", "high_c": 31, "low_c": 19, "conditions": "partly cloudy"}]})],
      x=("search_flights",)),
    A("weather", "weather in Springfield?",
      [("get_current_weather", {"location": "Springfield"},
        {"error": "ambiguous_location",
         "candidates": ["Springfield, IL, US", "Springfield, MA, US", "Springfield, MO, US"]})]),
    # math
    A("math", "What's 4821 * 37?", [("calculate", {"expression": "4821 * 37"}, "178377")]),
    A("math", "mean of 4, 8, 15, 16, 23, 42",
      [("describe_numbers", {"numbers": [4, 8, 15, 16, 23, 42], "statistic": "mean"},
        {"statistic": "mean", "value": 18.0})], sys=CONCISE),
    A("math", "calculate 10 / (5 - 5)",
      [("calculate", {"expression": "10 / (5 - 5)"}, "Error: division by zero")]),
    # units
    A("units", "How many pounds is 68 kg?",
      [("convert_units", {"value": 68, "from_unit": "kg", "to_unit": "pounds"},
        {"value": 149.91, "unit": "pounds"})]),
    A("units", "convert 5 cups to milliliters",
      [("convert_units", {"value": 5, "from_unit": "cups", "to_unit": "milliliters"}, "1182.94 milliliters")],
      sys=COOK, x=("find_recipes",)),
    A("units", "convert 3 meters to liters",
      [("convert_units", {"value": 3, "from_unit": "meters", "to_unit": "liters"},
        {"error": "incompatible units: length cannot be converted to volume"})]),
    # currency
    A("currency", "Convert 300 USD to MXN",
      [("convert_currency", {"amount": 300, "from_currency": "USD", "to_currency": "MXN"},
        {"amount": 300, "from": "USD", "to": "MXN", "rate": 17.08, "result": 5124.0})]),
    A("currency", "EUR to SEK rate?",
      [("get_exchange_rate", {"base": "EUR", "quote": "SEK"},
        {"base": "EUR", "quote": "SEK", "rate": 11.47, "as_of": "2024-06-12T09:00Z"})], sys=FINANCE),
    A("currency", "What's the GBP to EUR rate right now, and how much would 80 GBP get me?",
      [("get_exchange_rate", {"base": "GBP", "quote": "EUR"}, {"rate": 1.176}),
       ("convert_currency", {"amount": 80, "from_currency": "GBP", "to_currency": "EUR"},
        {"result": 94.08, "rate": 1.176})], sys=TRAVEL),
    A("currency", "Convert 100 XYZ to USD",
      [("convert_currency", {"amount": 100, "from_currency": "XYZ", "to_currency": "USD"},
        "Error 400: unknown currency code 'XYZ'")]),
    # email
    A("email", "Email sam@studio.io: the files are uploaded to the shared drive",
      [("send_email", {"to": "sam@studio.io", "body": "the files are uploaded to the shared drive"},
        {"status": "sent", "message_id": "<8f2c1@mail.example.com>"})], sys=OFFICE),
    A("email", "Did I get a flight confirmation email? Search for 'flight confirmation'.",
      [("search_inbox", {"query": "flight confirmation"},
        [{"from": "noreply@klm.com", "subject": "Your booking confirmation KL1234", "date": "2024-06-02"},
         {"from": "trips@expedia.com", "subject": "Flight confirmation - Amsterdam", "date": "2024-05-28"}])],
      x=("search_flights",)),
    A("email", "send kevin@exmaple.com the note: see you at 6",
      [("send_email", {"to": "kevin@exmaple.com", "body": "see you at 6"},
        "SMTP error 550: mailbox unavailable for kevin@exmaple.com")]),
    # calendar
    A("calendar", "What's on my calendar Thursday?",
      [("list_calendar_events", {"date": "Thursday"},
        [{"title": "1:1 with Priya", "start": "09:30", "end": "10:00"},
         {"title": "Quarterly review", "start": "13:00", "end": "14:30"},
         {"title": "Gym", "start": "18:00", "end": "19:00"}])], sys=OFFICE),
    A("calendar", "Add 'Coffee with Marco' on 2024-07-09 at 8:30",
      [("create_calendar_event", {"title": "Coffee with Marco", "date": "2024-07-09", "start_time": "8:30"},
        {"id": "evt_5521", "status": "created", "start": "2024-07-09T08:30:00",
         "end": "2024-07-09T09:00:00"})]),
    A("calendar", "schedule a call with the vendor tomorrow at 3pm, 30 minutes",
      [("create_calendar_event", {"title": "call with the vendor", "date": "tomorrow", "start_time": "3pm",
                                  "duration_minutes": 30},
        {"error": "conflict", "message": "Overlaps with 'Board meeting' 15:00-16:00"})], x=("send_email",)),
    # reminders
    A("reminders", "25 minute timer please", [("set_timer", {"duration": 25, "unit": "minutes"},
                                               "Timer started: 25 minutes (ends 14:52).")], sys=HOME),
    A("reminders", "remind me to water the plants tomorrow at 8am",
      [("create_reminder", {"text": "water the plants", "remind_at": "tomorrow at 8am"},
        {"ok": True, "reminder_id": 311, "remind_at": "2024-05-09T08:00:00"})]),
    A("reminders", "Remind me to submit the expense report on Friday at 5pm",
      [("create_reminder", {"text": "submit the expense report", "remind_at": "Friday at 5pm"},
        "503 Service Unavailable: reminder service is down for maintenance. Try again later.")], sys=OFFICE),
    # todo
    A("todo", "what's on my list",
      [("list_todos", {}, [{"id": 3, "title": "Call plumber", "status": "open"},
                           {"id": 4, "title": "Renew car insurance", "status": "open"},
                           {"id": 5, "title": "Send thank-you cards", "status": "completed"}])]),
    A("todo", "Add 'call plumber' as high priority",
      [("add_todo", {"title": "call plumber", "priority": "high"},
        "Added task #58: 'call plumber' (priority: high)")],
      x=("create_reminder",)),
    A("todo", "Mark task 12 done",
      [("complete_todo", {"todo_id": 12}, {"error": "not_found", "todo_id": 12})]),
    A("todo", "Find the dentist task on my to-do list and mark it as done.",
      [("list_todos", {"status": "open"}, [{"id": 14, "title": "Book dentist appointment"},
                                           {"id": 15, "title": "Return library books"}]),
       ("complete_todo", {"todo_id": 14}, "Task #14 marked complete.")], sys=OFFICE),
    # search
    A("search", "search: population of Iceland 2024",
      [("web_search", {"query": "population of Iceland 2024"},
        [{"title": "Iceland population - Statistics Iceland",
          "snippet": "The population of Iceland was 383,726 on 1 January 2024."},
         {"title": "Iceland - Wikipedia", "snippet": "Iceland has a population of about 380,000."}])]),
    A("search", "When is Python 3.13 coming out? Look it up.",
      [("web_search", {"query": "Python 3.13 release date"},
        "1. Python 3.13 release schedule (peps.python.org): 3.13.0 final planned for 2024-10-01.\n"
        "2. What's new in Python 3.13: free-threaded build, new REPL, JIT (experimental).")],
      sys="You are a research assistant. Use web search for anything that may have changed recently."),
    A("search", "Search for cheap flights hacks",
      [("web_search", {"query": "cheap flights hacks"},
        "Search API quota exceeded (429). Retry after 3600 seconds.")]),
    # stocks
    A("stocks", "How's Amazon stock doing? Ticker AMZN.",
      [("get_stock_price", {"ticker": "AMZN"},
        {"ticker": "AMZN", "price": 183.66, "change": -1.21, "change_pct": -0.65, "currency": "USD"})],
      sys=FINANCE),
    A("stocks", "GOOGL over the last 6mo?",
      [("get_price_history", {"ticker": "GOOGL", "range": "6mo"},
        {"start": 139.2, "end": 176.8, "high": 179.9, "low": 131.4, "change_pct": 27.0})]),
    A("stocks", "price for ZZZQ",
      [("get_stock_price", {"ticker": "ZZZQ"}, {"error": "unknown ticker 'ZZZQ'"})],
      x=("web_search",)),
    # flights
    A("flights", "Flights from Madrid to Athens on 2024-09-02?",
      [("search_flights", {"origin": "Madrid", "destination": "Athens", "departure_date": "2024-09-02"},
        [{"airline": "Aegean", "flight": "A3 695", "depart": "11:25", "arrive": "15:50", "price_eur": 142},
         {"airline": "Iberia", "flight": "IB 3150", "depart": "07:10", "arrive": "11:35", "price_eur": 168},
         {"airline": "Vueling", "flight": "VY 8108", "depart": "19:40", "arrive": "00:05",
          "price_eur": 96}])],
      sys=TRAVEL),
    A("flights", "Is LH 400 on time?",
      [("get_flight_status", {"flight_number": "LH 400"},
        {"flight": "LH 400", "status": "delayed", "scheduled": "18:55", "new_departure": "19:45",
         "gate": "Z52"})]),
    A("flights", "Any flights from Reno to Ushuaia on Dec 24 for 6 people in first class?",
      [("search_flights", {"origin": "Reno", "destination": "Ushuaia", "departure_date": "Dec 24",
                           "passengers": 6, "cabin": "first"}, {"results": []})], x=("search_hotels",)),
    # hotels
    A("hotels", "Hotels in Lisbon from June 10 to June 13, 2 guests",
      [("search_hotels", {"city": "Lisbon", "check_in": "June 10", "check_out": "June 13", "guests": 2},
        [{"name": "Memmo Alfama", "stars": 4, "price_per_night": 210, "rating": 9.1},
         {"name": "Lisboa Pessoa Hotel", "stars": 4, "price_per_night": 165, "rating": 8.8},
         {"name": "Home Lisbon Hostel", "stars": 2, "price_per_night": 58, "rating": 9.3}])]),
    A("hotels", "What do reviews say about The Hoxton Amsterdam?",
      [("get_hotel_reviews", {"hotel_name": "The Hoxton Amsterdam"},
        "Average 8.7/10 from 2,314 reviews. Praised: location on the canals, stylish rooms, breakfast. "
        "Complaints: small rooms, street noise on weekends.")], sys=TRAVEL),
    A("hotels", "hotel in Prague check in 2024-05-20 check out 2024-05-18",
      [("search_hotels", {"city": "Prague", "check_in": "2024-05-20", "check_out": "2024-05-18"},
        {"error": "invalid_dates", "message": "check_out must be after check_in"})]),
    # orders
    A("orders", "Where is order 120044?",
      [("get_order_status", {"order_id": "120044"},
        {"order_id": "120044", "status": "shipped", "carrier": "UPS", "eta": "2024-06-18"})], sys=SHOP),
    A("orders", "show my last 5 orders",
      [("list_orders", {"limit": 5},
        [{"id": "120044", "date": "2024-06-11", "total": 89.9, "status": "shipped"},
         {"id": "119870", "date": "2024-05-30", "total": 24.5, "status": "delivered"},
         {"id": "118102", "date": "2024-05-02", "total": 310.0, "status": "delivered"}])],
      x=("track_shipment",)),
    A("orders", "status of order 77812?",
      [("get_order_status", {"order_id": "77812"}, "Order 77812 not found for this account.")], sys=SHOP),
    # support
    A("support", "open a ticket: the mobile app crashes when I upload a photo",
      [("create_ticket", {"summary": "the mobile app crashes when I upload a photo"},
        {"ticket_id": "TCK-9051", "priority": "normal", "first_response_eta": "24h"})]),
    A("support", "Refund order 88120 please, reason: wrong color delivered",
      [("request_refund", {"order_id": "88120", "reason": "wrong color delivered"},
        {"status": "approved", "amount": 54.99, "method": "original payment", "days_to_appear": 5})],
      sys=SHOP),
    A("support", "what's happening with TCK-7702",
      [("get_ticket_status", {"ticket_id": "TCK-7702"},
        {"status": "waiting_on_customer", "last_update": "Agent asked for a screenshot of the error",
         "updated": "2024-06-10"})]),
    A("support",
      "My order 44120 never arrived and it's been 3 weeks. Can you check it and refund me if it's lost?",
      [("get_order_status", {"order_id": "44120"}, {"order_id": "44120", "status": "lost_in_transit"}),
       ("request_refund", {"order_id": "44120", "reason": "lost in transit"},
        {"status": "approved", "amount": 129.0})], sys=SHOP, x=("get_order_status",)),
    # account
    A("account", "reset my password, email m.rossi@gmail.com",
      [("send_password_reset", {"email": "m.rossi@gmail.com"},
        "Reset link sent to m***@gmail.com, valid for 30 minutes.")], sys=IT),
    A("account", "unlock jdoe please", [("unlock_account", {"username": "jdoe"}, {"unlocked": True})],
      sys=IT),
    A("account", "Unlock the account for user t.baker",
      [("unlock_account", {"username": "t.baker"},
        "Permission denied: account suspended by an administrator (policy violation). Contact "
        "security@contoso.com.")], sys=IT, x=("create_ticket",)),
    # music
    A("music", "play So What by Miles Davis",
      [("play_music", {"query": "So What by Miles Davis"},
        "Now playing: 'So What' by Miles Davis (Kind of Blue)")],
      sys=HOME),
    A("music", "volume to 40", [("set_volume", {"level": 40}, {"volume": 40})]),
    A("music", "Play lo-fi beats",
      [("play_music", {"query": "lo-fi beats"},
        "No playback device found. Open the music app on a speaker or phone and try again.")],
      x=("set_lights",)),
    # lights
    A("lights", "office lights on at 80%",
      [("set_lights", {"room": "office", "power": "on", "brightness": 80},
        {"room": "office", "power": "on", "brightness": 80})], sys=HOME),
    A("lights", "turn off the garage light",
      [("set_lights", {"room": "garage", "power": "off"}, "Device 'garage light' is offline.")]),
    A("lights", "Make the bedroom warm white",
      [("set_lights", {"room": "bedroom", "color": "warm white"}, {"ok": True})], sys=HOME,
      x=("play_music",)),
    # thermostat
    A("thermostat", "how warm is it inside?",
      [("get_thermostat_status", {}, {"current_temp": 19.5, "target": 21, "mode": "heat", "humidity": 44})],
      sys=HOME),
    A("thermostat", "set it to 23",
      [("set_thermostat", {"temperature": 23}, {"ok": True, "target": 23, "mode": "auto"})]),
    A("thermostat", "crank the heat to 95",
      [("set_thermostat", {"temperature": 95, "mode": "heat"},
        "Requested temperature 95 is outside the allowed range (50-90 F).")], sys=HOME),
    # translation
    A("translation", "How do I say 'where is the bathroom' in Spanish?",
      [("translate_text", {"text": "where is the bathroom", "target_language": "Spanish"},
        {"translated_text": "¿Dónde está el baño?"})], sys=TRAVEL),
    A("translation", "what language is 'obrigado pela ajuda'?",
      [("detect_language", {"text": "obrigado pela ajuda"}, {"language": "Portuguese", "confidence": 0.97})]),
    A("translation", "Translate 'good morning' into Klingon",
      [("translate_text", {"text": "good morning", "target_language": "Klingon"},
        "Unsupported target language: Klingon")], x=("define_word",)),
    # dictionary
    A("dictionary", "define ubiquitous",
      [("define_word", {"word": "ubiquitous"},
        {"word": "ubiquitous", "part_of_speech": "adjective",
         "definitions": ["present, appearing, or found everywhere"],
         "example": "Smartphones have become ubiquitous."})]),
    A("dictionary", "synonyms for 'fast', give me 4",
      [("find_synonyms", {"word": "fast", "limit": 4}, ["quick", "rapid", "swift", "speedy"])],
      sys="You are a writing coach for university students."),
    A("dictionary", "What does flibbertastic mean?",
      [("define_word", {"word": "flibbertastic"}, "No definition found for 'flibbertastic'.")]),
    # news
    A("news", "top science headlines today?",
      [("get_top_headlines", {"category": "science"},
        [{"title": "Webb telescope spots carbon in early galaxy", "source": "Reuters"},
         {"title": "New antibiotic class shows promise in mice", "source": "Nature News"},
         {"title": "Record Antarctic sea-ice low for June", "source": "BBC"}])]),
    A("news", "Any news on Boeing this week?",
      [("search_news", {"query": "Boeing", "days_back": 7},
        [{"title": "Boeing delivers 24 jets in May", "date": "2024-06-11"},
         {"title": "FAA extends 737 MAX production cap review", "date": "2024-06-09"}])],
      x=("get_stock_price",)),
    A("news", "what's going on in the world",
      [("get_top_headlines", {"category": "world"}, "Error: upstream news provider timed out after 10s")]),
    # maps
    A("maps", "Directions from Shibuya Station to Tokyo Tower by transit",
      [("get_directions", {"origin": "Shibuya Station", "destination": "Tokyo Tower", "mode": "transit"},
        {"duration_min": 28, "steps": ["Ginza Line to Toranomon (12 min)", "Walk 11 min to Tokyo Tower"],
         "fare_jpy": 180})], sys=TRAVEL),
    A("maps", "coffee shops near Grand Central?",
      [("find_places_nearby", {"place_type": "coffee shops", "near": "Grand Central"},
        [{"name": "Joe Coffee", "distance_m": 120, "rating": 4.5},
         {"name": "Culture Espresso", "distance_m": 450, "rating": 4.7}])]),
    A("maps", "How do I get from here to Smith's place?",
      [("get_directions", {"origin": "here", "destination": "Smith's place"},
        {"error": "geocoding_failed", "message": "Could not find a location for 'Smith's place'"})],
      x=("find_customer",)),
    # restaurants
    A("restaurants", "Mexican food in Oakland?",
      [("search_restaurants", {"city": "Oakland", "cuisine": "Mexican"},
        [{"name": "Tacos Mi Rancho", "price": "$", "rating": 4.6},
         {"name": "Calavera", "price": "$$$", "rating": 4.4}])], sys="You are a dining concierge."),
    A("restaurants", "Table for 3 at Lupa on Saturday at 20:00",
      [("reserve_table", {"restaurant_name": "Lupa", "date": "Saturday", "time": "20:00", "party_size": 3},
        {"status": "confirmed", "confirmation": "LUPA-5521"})]),
    A("restaurants", "Book Osteria Mozza for 2 on Friday at 7:30pm",
      [("reserve_table", {"restaurant_name": "Osteria Mozza", "date": "Friday", "time": "7:30pm",
                          "party_size": 2},
        {"status": "unavailable", "alternatives": ["6:00pm", "9:15pm"]})], x=("create_calendar_event",)),
    A("restaurants", "Find a sushi place in Denver and book the best-rated one for 2 tonight at 7pm.",
      [("search_restaurants", {"city": "Denver", "cuisine": "sushi"},
        [{"name": "Sushi Den", "rating": 4.7}, {"name": "Izakaya Den", "rating": 4.5}]),
       ("reserve_table", {"restaurant_name": "Sushi Den", "date": "tonight", "time": "7pm", "party_size": 2},
        {"status": "confirmed", "confirmation": "SD-88213"})], sys="You are a dining concierge."),
    # files
    A("files", "find the Q2 board deck",
      [("search_files", {"query": "Q2 board deck"},
        ["/Work/Board/Q2_board_deck_v4.pptx", "/Work/Board/archive/Q2_board_deck_v2.pptx"])]),
    A("files", "when was /projects/alpha/spec.docx last modified?",
      [("get_file_info", {"path": "/projects/alpha/spec.docx"},
        {"size_kb": 248, "owner": "l.chen", "modified": "2024-06-07T16:42:00"})], x=("run_sql",)),
    A("files", "search for my passport scan, it's a pdf",
      [("search_files", {"query": "passport scan", "file_type": "pdf"}, "0 files matched.")]),
    # database
    A("database", "run SELECT plan, count(*) FROM accounts GROUP BY plan on analytics",
      [("run_sql", {"sql": "SELECT plan, count(*) FROM accounts GROUP BY plan", "database": "analytics"},
        [{"plan": "free", "count": 10422}, {"plan": "pro", "count": 1873},
         {"plan": "enterprise", "count": 96}])],
      sys=DATA),
    A("database", "describe table payments in billing",
      [("describe_table", {"table": "payments", "database": "billing"},
        "id bigint PK\ncustomer_id bigint\namount_cents integer\ncurrency char(3)\ncreated_at timestamptz")]),
    A("database", "SELECT * FROM custmers LIMIT 5",
      [("run_sql", {"sql": "SELECT * FROM custmers LIMIT 5"}, 'ERROR: relation "custmers" does not exist')],
      sys=DATA),
    A("database", "DELETE FROM sessions WHERE expired = true",
      [("run_sql", {"sql": "DELETE FROM sessions WHERE expired = true"},
        "ERROR: cannot execute DELETE in a read-only transaction")], sys=DATA, x=("find_customer",)),
    # crm
    A("crm", "look up olivia@greenleaf.io",
      [("find_customer", {"query": "olivia@greenleaf.io"},
        {"id": "C-4410", "name": "Olivia Grant", "company": "Greenleaf", "plan": "Pro", "owner": "Sam K."})],
      sys="You are a sales assistant with access to the CRM."),
    A("crm", "Note on C-1182: asked for a demo next Tuesday",
      [("add_customer_note", {"customer_id": "C-1182", "note": "asked for a demo next Tuesday"},
        {"saved": True, "note_id": "N-90211"})]),
    A("crm", "Find Ravi Patel and add a note that he renewed for two years.",
      [("find_customer", {"query": "Ravi Patel"}, {"id": "C-2207", "name": "Ravi Patel", "company": "Orbis"}),
       ("add_customer_note", {"customer_id": "C-2207", "note": "renewed for two years"}, {"saved": True})],
      x=("send_email",)),
    A("crm", "pull up John Smith",
      [("find_customer", {"query": "John Smith"},
        [{"id": "C-101", "name": "John Smith", "company": "Acme"},
         {"id": "C-877", "name": "John Smith", "company": "Bluebird Labs"},
         {"id": "C-1203", "name": "John Smith", "company": "(none)"}])]),
    # shipping
    A("shipping", "track 1Z84X9E20398765432",
      [("track_shipment", {"tracking_number": "1Z84X9E20398765432"},
        {"status": "in_transit", "last_scan": "Louisville, KY - 2024-06-12 04:10", "eta": "2024-06-14"})]),
    A("shipping", "DHL 4839201174 where is it",
      [("track_shipment", {"tracking_number": "4839201174", "carrier": "dhl"},
        "Delivered 2024-06-11 13:02, signed by: RECEPTION")], x=("get_order_status",)),
    A("shipping", "Track ABC123",
      [("track_shipment", {"tracking_number": "ABC123"},
        {"error": "tracking number not recognized by any carrier"})]),
    # sports
    A("sports", "Arsenal score?",
      [("get_live_score", {"team": "Arsenal"},
        {"home": "Arsenal", "away": "Chelsea", "score": "2-1", "minute": 74, "status": "live"})]),
    A("sports", "La Liga standings",
      [("get_league_standings", {"league": "La Liga"},
        [{"pos": 1, "team": "Real Madrid", "pts": 95}, {"pos": 2, "team": "Barcelona", "pts": 85},
         {"pos": 3, "team": "Girona", "pts": 81}])], sys=CONCISE),
    A("sports", "How are the Celtics doing tonight?",
      [("get_live_score", {"team": "Celtics"},
        {"team": "Celtics", "status": "no game today", "next_game": "vs Heat, Thu 19:30 ET"})]),
    # recipes
    A("recipes", "something with tofu and broccoli, vegan",
      [("find_recipes", {"ingredients": ["tofu", "broccoli"], "diet": "vegan"},
        [{"title": "Garlic tofu & broccoli stir-fry", "minutes": 25},
         {"title": "Sheet-pan sesame tofu", "minutes": 40}])], sys=COOK),
    A("recipes", "recipes with durian and anchovies under 10 minutes",
      [("find_recipes", {"ingredients": ["durian", "anchovies"], "max_minutes": 10}, {"results": []})]),
    A("recipes", "What can I make with potatoes and leeks?",
      [("find_recipes", {"ingredients": ["potatoes", "leeks"]},
        "1. Potato leek soup (45 min)\n2. Leek and potato gratin (70 min)\n"
        "3. Crispy potato-leek hash (30 min)")],
      x=("convert_units",)),
    # timezones
    A("timezones", "what time is it in Brisbane",
      [("get_local_time", {"city": "Brisbane"}, "2024-06-12 22:14 (AEST, UTC+10)")], sys=TRAVEL),
    A("timezones", "10:00 in Chicago is what in Tokyo?",
      [("convert_timezone", {"time": "10:00", "from_city": "Chicago", "to_city": "Tokyo"},
        {"result": "00:00 next day", "from_tz": "CDT (UTC-5)", "to_tz": "JST (UTC+9)"})],
      x=("create_calendar_event",)),
    A("timezones", "What time is it at the office right now?",
      [("get_local_time", {"city": "the office"}, {"error": "unknown city: 'the office'"})], sys=OFFICE),
    # exchanges
    A("exchanges", "Can I return order 55102?",
      [("check_return_eligibility", {"order_id": "55102"}, {"eligible": True, "return_by": "2024-07-01"})],
      sys=SHOP),
    A("exchanges", "Exchange the rain jacket in order 55102 for a medium",
      [("start_exchange", {"order_id": "55102", "item": "rain jacket", "new_size": "medium"},
        {"exchange_id": "EX-3381", "return_label_url": "https://northwind.example/labels/EX-3381.pdf"})],
      sys=SHOP),
    A("exchanges", "I want to exchange the swimsuit from order 61734",
      [("check_return_eligibility", {"order_id": "61734"},
        {"eligible": False, "reason": "final sale item"})]),
    A("exchanges", "Please check if order 70021 can be exchanged, and if so swap the boots for size 9.",
      [("check_return_eligibility", {"order_id": "70021"}, {"eligible": True, "return_by": "2024-07-20"}),
       ("start_exchange", {"order_id": "70021", "item": "boots", "new_size": "9"},
        {"exchange_id": "EX-3402", "status": "created"})], sys=SHOP, x=("get_order_status",)),
    # banking
    A("banking", "savings balance?",
      [("get_account_balance", {"account": "savings"},
        {"account": "savings", "balance": 8420.17, "currency": "USD"})],
      sys="You are the assistant in the Riverside Bank app."),
    A("banking", "move 200 from checking to savings",
      [("transfer_funds", {"from_account": "checking", "to_account": "savings", "amount": 200},
        {"status": "completed", "reference": "TRF-66120"})]),
    A("banking", "Transfer 500 from savings to checking",
      [("transfer_funds", {"from_account": "savings", "to_account": "checking", "amount": 500},
        "Insufficient funds: savings balance 212.40 < 500.00")], x=("convert_currency",)),
    # sms
    A("sms", "text 415-555-0188: on my way",
      [("send_text_message", {"phone_number": "415-555-0188", "message": "on my way"}, "Delivered")]),
    A("sms", "Send 'happy birthday!!' to 12345",
      [("send_text_message", {"phone_number": "12345", "message": "happy birthday!!"},
        {"error": "invalid_phone_number", "detail": "Number must include area code"})], x=("send_email",)),
    # notes
    A("notes", "note: locker code 4471",
      [("create_note", {"content": "locker code 4471"}, "Note saved (id n_2231).")]),
    A("notes", "Save a note titled 'Book club' with: next meeting we read Piranesi",
      [("create_note", {"title": "Book club", "content": "next meeting we read Piranesi"},
        {"id": "n_2240", "saved": True})], sys=CONCISE),
    # rides
    A("rides", "ride from 10 Downing St to King's Cross",
      [("request_ride", {"pickup": "10 Downing St", "dropoff": "King's Cross"},
        {"driver": "Amir", "car": "Toyota Prius, LK21 XTC", "eta_min": 4, "fare_estimate_gbp": 18.5})]),
    A("rides", "I need an XL from the stadium to Oak Street",
      [("request_ride", {"pickup": "the stadium", "dropoff": "Oak Street", "ride_type": "xl"},
        "No drivers available near the pickup location right now.")], sys=TRAVEL),
]

# --------------------------------------------------------------------------- assembly

_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list,
          "object": dict}


def check_args(name: str, args: Json) -> None:
    """A small schema check (required keys, known keys, types, enums, bounds) so no case is malformed."""
    params = TOOLS[name]["function"]["parameters"]
    missing = [k for k in params["required"] if k not in args]
    unknown = [k for k in args if k not in params["properties"]]
    assert not missing and not unknown, f"{name}: missing {missing}, unknown {unknown}"
    for key, value in args.items():
        spec = params["properties"][key]
        is_bool = isinstance(value, bool)
        ok = isinstance(value, _TYPES[spec["type"]]) and not (is_bool and spec["type"] != "boolean")
        assert ok, f"{name}.{key}: {value!r} is not {spec['type']}"
        assert value in spec.get("enum", [value]), f"{name}.{key}: {value!r} not in enum"
        low, high = spec.get("minimum", value), spec.get("maximum", value)
        assert low <= value <= high, f"{name}.{key}: {value!r} out of range"


def bound(group: str, extra: tuple[str, ...], n: int) -> list[Json]:
    own = [t["function"]["name"] for t in FAMILIES[group]]
    names = [*extra, *own] if n % 3 == 1 else [*own, *extra]
    assert len(set(names)) == len(names), names
    return [TOOLS[k] for k in names]


def prefix(case: Json) -> list[Json]:
    return ([{"role": "system", "content": case["sys"]}] if case["sys"] else []) + case["hist"]


def build() -> list[Json]:
    rows: list[Json] = []
    for n, case in enumerate(CALLS, 1):
        name, args = case["call"]
        tools = bound(case["group"], case["x"], n)
        assert name in [t["function"]["name"] for t in tools]
        check_args(name, args)
        rows.append({"id": f"call-{n}", "category": "call", "group": case["group"],
                     "messages": [*prefix(case), u(case["text"])], "tools": tools,
                     "expected": [{"name": name, "arguments": args}]})
    for n, case in enumerate(NO_CALLS, 1):
        assert 1 <= len(case["tools"]) <= 4, case["text"]
        rows.append({"id": f"no_call-{n}", "category": "no_call", "group": case["group"],
                     "messages": [*prefix(case), u(case["text"])], "tools": [TOOLS[k] for k in case["tools"]],
                     "expected": []})
    for n, case in enumerate(AFTER, 1):
        tools = bound(case["group"], case["x"], n)
        messages = [*prefix(case), u(case["text"])]
        for k, (name, args, result) in enumerate(case["rounds"], 1):
            assert name in [t["function"]["name"] for t in tools], name
            check_args(name, args)
            messages += [call_msg(name, args, f"call_{k}"), result_msg(result, f"call_{k}")]
        rows.append({"id": f"after_tool-{n}", "category": "after_tool", "group": case["group"],
                     "messages": messages, "tools": tools, "expected": []})
    for row in rows:
        for m in row["messages"]:
            for tc in m.get("tool_calls") or []:
                check_args(tc["function"]["name"], json.loads(tc["function"]["arguments"]))
    return rows


def main() -> None:
    rows = build()
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    counts = {c: sum(r["category"] == c for r in rows) for c in ("call", "no_call", "after_tool")}
    print(f"wrote {len(rows)} cases to {OUT}: {counts}")


if __name__ == "__main__":
    main()
