"""Per-function phrase templates: one imperative clause per call, in plain user language.

Every function of the 8 classes has at least one template: a function of `Args` (see
`render.py`) returning a clause such as "make a folder called 'temp'". Templates never spell a
function or parameter name (no "mkdir", no "dir_name"); the few plain English words that also
happen to be parameter names ("price", "title", "message", …) are listed in
`tests/unit/test_procedural.py` with the reason they are allowed. Values the user must supply
appear in the clause; values that came from earlier results are described by their source.
"""

from __future__ import annotations

from collections.abc import Callable

from graphs.synthesis.procedural import voice
from graphs.synthesis.procedural.argtext import (
    CAR_STATUS,
    WC,
    booking,
    card,
    door_list,
    opt,
    token_aside,
    travel_class,
    unit_name,
    updates_text,
    who,
)
from graphs.synthesis.procedural.render import Args

Template = Callable[[Args], str]


TEMPLATES: dict[str, tuple[Template, ...]] = {
    # ---------------------------------------------------------------- GorillaFileSystem
    "cd": (
        lambda a: (
            "go back up one level"
            if a.raw("folder") == ".."
            else f"go into the {a.v('folder')} directory"
        ),
        lambda a: (
            "move up to the parent directory"
            if a.raw("folder") == ".."
            else f"switch over to the {a.v('folder')} directory"
        ),
    ),
    "ls": (
        lambda a: (
            "show me everything in the current directory, hidden items included"
            if a.raw("a")
            else "show me what's in the current directory"
        ),
    ),
    "pwd": (lambda a: "tell me which directory I'm in right now",),
    "du": (
        lambda a: (
            "tell me how much disk space this directory uses"
            + (", in a readable format like KB or MB" if a.raw("human_readable") else ", in bytes")
        ),
    ),
    "mkdir": (
        lambda a: f"make a new folder called {a.v('dir_name')} here",
        lambda a: f"create a directory named {a.v('dir_name')} right here",
    ),
    "touch": (
        lambda a: f"create an empty file called {a.v('file_name')}",
        lambda a: f"start a blank file named {a.v('file_name')} here",
    ),
    "echo": (
        lambda a: (
            f"write {a.v('content')} into {a.v('file_name')}"
            if a.has("file_name")
            else f"print {a.v('content')} on the terminal"
        ),
    ),
    "cat": (
        lambda a: f"show me the contents of {a.v('file_name')}",
        lambda a: f"open {a.v('file_name')} so I can read it",
    ),
    "tail": (
        lambda a: (
            f"show me the last {a.n('lines')} lines of {a.v('file_name')}"
            if a.has("lines")
            else f"show me the end of {a.v('file_name')}"
        ),
    ),
    "sort": (
        lambda a: f"put the lines of {a.v('file_name')} in alphabetical order",
        lambda a: f"order the lines of {a.v('file_name')} alphabetically",
    ),
    "wc": (lambda a: f"count the {WC.get(a.raw('mode') or 'l', 'lines')} in {a.v('file_name')}",),
    "grep": (
        lambda a: f"pull out every line of {a.v('file_name')} that contains {a.v('pattern')}",
        lambda a: f"search {a.v('file_name')} for lines mentioning {a.v('pattern')}",
    ),
    "diff": (lambda a: f"compare {a.v('file_name1')} with {a.v('file_name2')} line by line",),
    "find": (
        lambda a: (
            f"look for anything whose name includes {a.v('name')}"
            + (" starting from the current directory" if a.has("path") else "")
        ),
        lambda a: (
            f"locate every file or folder with {a.v('name')} in its name"
            + (", searching from here" if a.has("path") else "")
        ),
    ),
    "cp": (
        lambda a: f"copy {a.v('source')} to {a.v('destination')}",
        lambda a: f"make a copy of {a.v('source')} at {a.v('destination')}",
    ),
    "mv": (
        lambda a: f"move {a.v('source')} to {a.v('destination')}",
        lambda a: f"relocate {a.v('source')} to {a.v('destination')}",
    ),
    "rm": (lambda a: f"delete {a.v('file_name')}", lambda a: f"get rid of {a.v('file_name')}"),
    "rmdir": (lambda a: f"remove the empty folder {a.v('dir_name')}",),
    # ---------------------------------------------------------------- MathAPI
    "add": (lambda a: f"work out {a.v('a')} plus {a.v('b')}",),
    "subtract": (lambda a: f"work out {a.v('a')} minus {a.v('b')}",),
    "multiply": (lambda a: f"calculate {a.v('a')} times {a.v('b')}",),
    "divide": (lambda a: f"calculate {a.v('a')} divided by {a.v('b')}",),
    "power": (lambda a: f"compute {a.v('base')} raised to {a.v('exponent')}",),
    "percentage": (lambda a: f"tell me what percent {a.v('part')} is of {a.v('whole')}",),
    "absolute_value": (lambda a: f"give me the magnitude of {a.v('number')}, ignoring its sign",),
    "round_number": (
        lambda a: (
            f"round {a.v('number')} to {a.n('decimal_places')} decimal places"
            if a.has("decimal_places")
            else f"round {a.v('number')} to a whole figure"
        ),
    ),
    "square_root": (
        lambda a: f"work out the square root of {a.v('number')} to {a.n('precision')} digits",
    ),
    "logarithm": (
        lambda a: (
            f"compute the log base {a.v('base')} of {a.v('value')} with {a.n('precision')} digits"
        ),
    ),
    "mean": (lambda a: f"average {a.v('numbers')}",),
    "standard_deviation": (lambda a: f"give me the standard deviation of {a.v('numbers')}",),
    "min_value": (lambda a: f"tell me the smallest of {a.v('numbers')}",),
    "max_value": (lambda a: f"tell me the largest of {a.v('numbers')}",),
    "sum_values": (lambda a: f"total up {a.v('numbers')}",),
    "si_unit_conversion": (
        lambda a: (
            f"convert {a.v('value')} from {unit_name(a.raw('unit_in'))} into {unit_name(a.raw('unit_out'))}"
        ),
    ),
    "imperial_si_conversion": (
        lambda a: (
            f"convert {a.v('value')} from {unit_name(a.raw('unit_in'))} into {unit_name(a.raw('unit_out'))}"
        ),
    ),
    # ---------------------------------------------------------------- MessageAPI
    "list_users": (lambda a: "list everyone in the workspace",),
    "get_user_id": (lambda a: f"look up the workspace ID of {a.w('user')}",),
    "message_login": (lambda a: f"sign me into the messaging app as {a.v('user_id')}",),
    "message_get_login_status": (lambda a: "check whether I'm signed into the messaging app",),
    "send_message": (
        lambda a: f"send {a.v('message')} to {who(a)}",
        lambda a: f"text {who(a)} saying {a.v('message')}",
    ),
    "delete_message": (lambda a: f"delete the latest text I sent to {who(a)}",),
    "view_messages_sent": (lambda a: "show me all the texts I've sent",),
    "get_message_stats": (lambda a: "give me my messaging statistics",),
    "add_contact": (lambda a: f"save {a.w('user_name')} as a new contact",),
    "search_messages": (lambda a: f"search my texts for {a.v('keyword')}",),
    # ---------------------------------------------------------------- TwitterAPI
    "authenticate_twitter": (
        lambda a: f"sign me into Twitter as {a.v('username')} with the password {a.v('password')}",
    ),
    "posting_get_login_status": (lambda a: "check whether I'm signed into Twitter",),
    "post_tweet": (
        lambda a: (
            f"publish a post saying {a.v('content')}"
            + opt(a, "tags", f", tagged {a.v('tags')}")
            + opt(a, "mentions", f", also tagging {a.v('mentions')}")
        ),
    ),
    "retweet": (
        lambda a: (
            f"share {a.v('tweet_id') if a.flowed('tweet_id') else 'post ' + a.v('tweet_id')} again on my own feed"
        ),
    ),
    "comment": (
        lambda a: (
            f"reply to {a.v('tweet_id') if a.flowed('tweet_id') else 'post ' + a.v('tweet_id')} with {a.v('comment_content')}"
        ),
    ),
    "mention": (
        lambda a: (
            f"tag {a.v('mentioned_usernames')} in {a.v('tweet_id') if a.flowed('tweet_id') else 'post ' + a.v('tweet_id')}"
        ),
    ),
    "follow_user": (lambda a: f"start following {a.v('username_to_follow')}",),
    "unfollow_user": (lambda a: f"stop following {a.v('username_to_unfollow')}",),
    "list_all_following": (lambda a: "list every account I follow",),
    "get_tweet": (
        lambda a: (
            f"pull up {a.v('tweet_id') if a.flowed('tweet_id') else 'post ' + a.v('tweet_id')}"
        ),
    ),
    "get_tweet_comments": (
        lambda a: (
            f"show me the replies on {a.v('tweet_id') if a.flowed('tweet_id') else 'post ' + a.v('tweet_id')}"
        ),
    ),
    "get_user_tweets": (lambda a: f"show me all the posts by {a.v('username')}",),
    "get_user_stats": (lambda a: f"give me the account statistics of {a.v('username')}",),
    "search_tweets": (lambda a: f"search the posts for {a.v('keyword')}",),
    # ---------------------------------------------------------------- TicketAPI
    "ticket_login": (
        lambda a: (
            f"sign me into the support system as {a.v('username')} with the password {a.v('password')}"
        ),
    ),
    "ticket_get_login_status": (lambda a: "check whether I'm signed into the support system",),
    "logout": (lambda a: "sign me out of the support system",),
    "create_ticket": (
        lambda a: (
            f"open a support ticket titled {a.v('title')}"
            + opt(a, "description", f" with the details {a.v('description')}")
            + opt(a, "priority", f" at urgency level {a.n('priority')}")
        ),
    ),
    "get_ticket": (
        lambda a: (
            f"show me {a.v('ticket_id') if a.flowed('ticket_id') else 'ticket ' + a.v('ticket_id')}"
        ),
    ),
    "close_ticket": (
        lambda a: (
            f"close {a.v('ticket_id') if a.flowed('ticket_id') else 'ticket ' + a.v('ticket_id')}"
        ),
    ),
    "resolve_ticket": (
        lambda a: (
            f"mark {a.v('ticket_id') if a.flowed('ticket_id') else 'ticket ' + a.v('ticket_id')} as resolved, noting {a.v('resolution')}"
        ),
    ),
    "edit_ticket": (
        lambda a: (
            f"change {a.v('ticket_id') if a.flowed('ticket_id') else 'ticket ' + a.v('ticket_id')}: set {updates_text(a)}"
        ),
    ),
    "get_user_tickets": (
        lambda a: (
            f"list my support tickets that are {a.v('status')}"
            if a.has("status")
            else "list all my support tickets"
        ),
    ),
    # ---------------------------------------------------------------- TradingBot
    "trading_login": (
        lambda a: (
            f"sign me into my brokerage account as {a.v('username')} with the password {a.v('password')}"
        ),
    ),
    "trading_logout": (lambda a: "sign me out of my brokerage account",),
    "trading_get_login_status": (lambda a: "check whether I'm signed into my brokerage account",),
    "get_current_time": (lambda a: "tell me the current market time",),
    "get_account_info": (lambda a: "show me my brokerage account details",),
    "get_watchlist": (lambda a: "show me my watchlist",),
    "get_order_history": (lambda a: "list all my past orders",),
    "get_transaction_history": (
        lambda a: (
            f"show my account transactions from {a.v('start_date')} to {a.v('end_date')}"
            if a.has("start_date")
            else "show my full transaction record"
        ),
    ),
    "get_symbol_by_name": (lambda a: f"look up the ticker of {a.w('name')}",),
    "get_available_stocks": (lambda a: f"list the companies in the {a.w('sector')} industry",),
    "get_stock_info": (lambda a: f"get the latest market data on {a.v('symbol')}",),
    "add_to_watchlist": (lambda a: f"put {a.v('stock')} on my watchlist",),
    "remove_stock_from_watchlist": (lambda a: f"take {a.v('symbol')} off my watchlist",),
    "filter_stocks_by_price": (
        lambda a: (
            f"tell me which of {a.v('stocks')} trade between ${a.v('min_price')} and ${a.v('max_price')}"
        ),
    ),
    "notify_price_change": (
        lambda a: f"alert me if any of {a.v('stocks')} moved by {a.v('threshold')}% or more",
    ),
    "place_order": (
        lambda a: (
            f"{a.raw('order_type').lower()} {a.n('amount')} shares of {a.v('symbol')} at {a.v('price') if a.flowed('price') else '$' + a.v('price')}"
        ),
    ),
    "get_order_details": (
        lambda a: (
            f"show me the details of {a.v('order_id') if a.flowed('order_id') else 'order ' + a.v('order_id')}"
        ),
    ),
    "cancel_order": (
        lambda a: (
            f"cancel {a.v('order_id') if a.flowed('order_id') else 'order ' + a.v('order_id')}"
        ),
    ),
    "fund_account": (
        lambda a: (
            f"deposit {a.v('amount') if a.flowed('amount') else '$' + a.v('amount')} into my brokerage account"
        ),
    ),
    "withdraw_funds": (lambda a: f"withdraw ${a.v('amount')} from my brokerage account",),
    # ---------------------------------------------------------------- TravelAPI
    "authenticate_travel": (
        lambda a: (
            f"log me into the travel system for {a.w('user_first_name')} {a.w('user_last_name')}: client ID "
            f"{a.v('client_id')}, secret {a.v('client_secret')}, refresh token {a.v('refresh_token')}, access scope {a.v('grant_type')}"
        ),
    ),
    "travel_get_login_status": (lambda a: "check whether I'm logged into the travel system",),
    "list_all_airports": (lambda a: "list every airport you can fly me from",),
    "get_all_credit_cards": (lambda a: "show me every credit card I have on file",),
    "get_budget_fiscal_year": (
        lambda a: (
            "tell me the fiscal year of my travel budget"
            + opt(a, "lastModifiedAfter", f", counting changes after {a.v('lastModifiedAfter')}")
        ),
    ),
    "get_nearest_airport_by_city": (lambda a: f"tell me the closest airport to {a.w('location')}",),
    "get_flight_cost": (
        lambda a: (
            f"quote me {travel_class(a)} fare from {a.v('travel_from')} to {a.v('travel_to')} on {a.date('travel_date')}"
        ),
    ),
    "book_flight": (
        lambda a: (
            f"book {travel_class(a)} seat from {a.v('travel_from')} to {a.v('travel_to')} on {a.date('travel_date')}, "
            f"{voice.pay(a.rng)}{card(a)}{token_aside(a)}"
        ),
    ),
    "get_credit_card_balance": (lambda a: f"tell me the balance on {card(a)}{token_aside(a)}",),
    "register_credit_card": (
        lambda a: (
            f"register a new card {a.v('card_number')} for {a.w('cardholder_name')}, expiring {a.v('expiration_date')}, "
            f"security code {a.n('card_verification_number')}{token_aside(a)}"
        ),
    ),
    "get_booking_history": (lambda a: f"show me all my bookings{token_aside(a)}",),
    "retrieve_invoice": (lambda a: f"get me the invoice for {booking(a)}{token_aside(a)}",),
    "cancel_booking": (lambda a: f"cancel {booking(a)}{token_aside(a)}",),
    "contact_customer_support": (
        lambda a: f"tell customer support about {booking(a)}: {a.v('message')}",
    ),
    "purchase_insurance": (
        lambda a: (
            f"buy {a.w('insurance_type')} cover for {booking(a)} at ${a.v('insurance_cost')}, charged to {card(a)}{token_aside(a)}"
        ),
    ),
    "compute_exchange_rate": (
        lambda a: f"convert {a.v('value')} from {a.v('base_currency')} to {a.v('target_currency')}",
    ),
    "set_budget_limit": (
        lambda a: (
            f"cap my travel budget at {a.v('budget_limit') if a.flowed('budget_limit') else '$' + a.v('budget_limit')}{token_aside(a)}"
        ),
    ),
    "verify_traveler_information": (
        lambda a: (
            f"check the traveler details of {a.w('first_name')} {a.w('last_name')}, born {a.v('date_of_birth')}, passport {a.v('passport_number')}"
        ),
    ),
    # ---------------------------------------------------------------- VehicleControlAPI
    "startEngine": (lambda a: "start the engine",),
    "fillFuelTank": (
        lambda a: (
            f"put {a.v('fuelAmount')} gallons of fuel in the tank"
            if not a.flowed("fuelAmount")
            else f"fill the tank with {a.v('fuelAmount')}"
        ),
    ),
    "lockDoors": (lambda a: f"{'unlock' if a.raw('unlock') else 'lock'} {door_list(a)}",),
    "pressBrakePedal": (
        lambda a: (
            "press the brake pedal all the way down"
            if a.raw("pedalPosition") == 1.0
            else f"press the brake pedal to {int(float(a.raw('pedalPosition')) * 100)}%"
        ),
    ),
    "releaseBrakePedal": (lambda a: "let go of the brake pedal",),
    "adjustClimateControl": (
        lambda a: (
            f"set the cabin to {a.v('temperature')} degrees {'Fahrenheit' if a.raw('unit') == 'fahrenheit' else 'Celsius'}"
            + opt(a, "fanSpeed", f" with the fan at {a.n('fanSpeed')}")
            + opt(a, "mode", f" in {a.raw('mode')} setting")
        ),
    ),
    "check_tire_pressure": (lambda a: "check my tire pressures",),
    "find_nearest_tire_shop": (lambda a: "locate the closest tire shop for me",),
    "get_current_speed": (lambda a: "tell me how fast I'm going",),
    "get_outside_temperature_from_google": (lambda a: "tell me the temperature outside",),
    "get_outside_temperature_from_weather_com": (
        lambda a: "get the outdoor temperature from the weather service",
    ),
    "displayCarStatus": (
        lambda a: f"show me the car's {CAR_STATUS.get(a.raw('option'), 'status')}",
    ),
    "display_log": (lambda a: f"show {a.v('messages')} on the car's display",),
    "estimate_distance": (
        lambda a: f"estimate how far it is between {a.v('cityA')} and {a.v('cityB')}",
    ),
    "estimate_drive_feasibility_by_mileage": (
        lambda a: (
            f"tell me if I can drive {a.v('distance') if a.flowed('distance') else a.v('distance') + ' miles'} on my current fuel"
        ),
    ),
    "gallon_to_liter": (
        lambda a: (
            f"convert {a.v('gallon')} gallons into liters"
            if not a.flowed("gallon")
            else f"express {a.v('gallon')} in liters"
        ),
    ),
    "liter_to_gallon": (lambda a: f"convert {a.v('liter')} liters into gallons",),
    "get_zipcode_based_on_city": (
        lambda a: f"look up the zip code of {a.w('city')}",
        lambda a: f"retrieve the postal code for {a.w('city')}",
        lambda a: f"get the zipcode of {a.w('city')}",
        lambda a: f"I need the postal code of {a.w('city')}",
    ),
    "set_navigation": (lambda a: f"navigate to {a.v('destination')}",),
    "setCruiseControl": (
        lambda a: (
            f"turn on cruise at {a.n('speed')} mph keeping {a.n('distanceToNextVehicle')} meters from the car ahead"
            if a.raw("activate")
            else "turn off cruise"
        ),
    ),
    "setHeadlights": (
        lambda a: (
            f"switch the headlights {'to automatic' if a.raw('mode') == 'auto' else a.raw('mode')}"
        ),
    ),
    "activateParkingBrake": (
        lambda a: (
            "engage the parking brake" if a.raw("mode") == "engage" else "release the parking brake"
        ),
    ),
}
