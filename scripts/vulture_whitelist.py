"""Names vulture cannot see used (``scripts/test.sh`` runs it over the code, not the tests).

Each is used where vulture does not look: by a framework that calls it by name, by a Jinja
template, by a client reading a JSON field, or by a protocol a fake implements. Dead code
does not belong here: delete it instead.
"""
# ruff: noqa

from types import SimpleNamespace

_ = SimpleNamespace()

# Called by name by the libraries they plug into.
_.connection_made  # asyncio.Protocol (benchmarks/platform.py's load client)
_.data_received
_.connection_lost
_.on_body  # httptools' parser callbacks (the same client)
_.on_message_complete
_.check_and_store  # bittensor.http_auth.NonceStore (template/transport/nonces.py)
_.set_ok  # http.cookiejar.CookiePolicy (commons/dojo_api.py refuses every cookie)
_.required  # argparse.Action's attribute (dojo/cli/platform.py)
app_from_environment  # uvicorn's factory for `dojo platform serve --workers N`, by its import path
option_string  # argparse.Action.__call__'s parameter (template/config.py)
server_header  # uvicorn.run's keyword arguments (dojo/cli/platform.py's UvicornOptions)
proxy_headers
h11_max_incomplete_event_size  # and the synthetic service's (dojo/synthetic/service.py's ServerOptions)

# Read by the Jinja templates (dojo/platform/http/web/templates/).
highlighted
by_invite
done_today
done_total
time_total
time_median
_.edited
numbers  # a dashboard row's response numbers
glimpses  # a dashboard row's glimpse of each response (_glimpse.html)
scored_tasks  # Your work's summary
better  # How to judge (dojo/platform/http/web/_guidelines.py)
look_for

# The team (GET /api/v1/miner/team and /miner/team).
joined_at
last_answer_at
median_time
agreement_tasks
latest_score_at
message_at

# Fields of the API's responses, the database's columns, the counters a run reports.
has_recovery_code  # GET /api/v1/worker/me
send_detail  # the validator's assignments: why a send or a collection failed, for people reading
collect_detail  # the database (docs/lifecycle.md)
collected_at  # the validator's assignments: when each was collected, for the dataset and for people
_.collected_at
rate_limited  # a simulated worker's stats, as `python -m dojo.workers` prints them
_.rate_limited
missed
_.missed
judged_at  # the miner's answers: when each was judged, for the operator reading its database
full_until  # tasks: written and read by the queue's PostgreSQL functions (revision 0009)

# The substrate interface's methods and keywords, as the SDK calls them on the fake
# substrate (tests/template/test_subtensor_chain.py).
_.balance
_.block_number
_.finalized_block_number
_.query_map
_.runtime_call
_.compose
_.estimate_fee
period
wait_for_inclusion
wait_for_finalization

# Fields of the organic API's wire format that its callers read (commons/organic/_models.py).
_.next_cursor  # TaskPage: the cursor of the next page
openrouter_api_key  # ServiceSettings: read by name through dojo.synthetic.llm.PROVIDERS
together_api_key  # idem
openai_api_key  # idem

# The chain's records, read field by field where they are checked against subtensor.
commit_reveal  # Hyperparameters: whether the subnet commits weights before revealing them
clipped_weights  # yuma.EpochResult: W', the weights clipped at consensus
_.add_stake  # LocalChain: a hotkey's stake raised, as a staking extrinsic would

# Settings that are flags by their field's name (dojo/miner/config.py, dojo/validator/config.py).
scoring_method  # --scoring_method, which the documented command lines pass (README)
