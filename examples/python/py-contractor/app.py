"""A contractor agent in Python: it bids on calls for proposals and does
the work it wins, through the `protocols` interface of caxton:agent@0.2.0
(the same contract the Rust contractor uses).

Its behaviour is set at deploy (`--config`):
    {"name": "pyco", "bid": 7.5, "refuse": false, "fail": false, "stall_ms": 0}

- `cfp`: `propose` with `bid` (made by the host's `protocols.propose`),
  or `refuse` when `refuse` is set;
- `accept-proposal`: `inform` with the work done, or `failure` when
  `fail` is set;
- `reject-proposal`: counted in the key-value store, no reply
  (a request `rejections` answers the count);
- any other message: `inform` with its quote.
`stall_ms` makes it wait that long before answering a `cfp`: a bidder
that misses the deadline.

Build (from the repository root):
    componentize-py -d wit -w agent componentize -p examples/python/py-contractor app -o py-contractor.wasm
"""

import json
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent_handler
from wit_world.imports import keyvalue, logging, protocols, types

CONFIG = {"name": "py-contractor", "bid": 10.0, "refuse": False, "fail": False, "stall_ms": 0}


def reply(performative, content):
    return types.Reply(performative=performative, content=content, content_type=None)


class AgentHandler(exports.AgentHandler):
    def init(self, config_json: str) -> None:
        try:
            given = json.loads(config_json)
        except ValueError as e:
            raise Err(types.Error_InvalidInput(f"config is not JSON: {e}"))
        if not isinstance(given, dict):
            raise Err(types.Error_InvalidInput("config must be a JSON object"))
        CONFIG.update({k: v for k, v in given.items() if k in CONFIG})

    def describe(self) -> agent_handler.AgentInfo:
        return agent_handler.AgentInfo(
            capabilities=["quote"],
            description="Python contractor: bids on calls for proposals and does the work it wins",
            subscriptions=[],
        )

    def handle_message(self, msg: types.Message):
        P = types.Performative
        name = CONFIG["name"]
        if msg.performative == P.CFP:
            if CONFIG["stall_ms"]:
                time.sleep(CONFIG["stall_ms"] / 1000)
            if CONFIG["refuse"]:
                return reply(P.REFUSE, f"{name} is not taking work")
            logging.log(logging.Level.INFO, f"bidding {CONFIG['bid']} on: {msg.content}")
            return protocols.propose(float(CONFIG["bid"]), f"{name} will do it for {CONFIG['bid']}")
        if msg.performative == P.ACCEPT_PROPOSAL:
            if CONFIG["fail"]:
                return reply(P.FAILURE, f"{name} could not finish: {msg.content}")
            return reply(P.INFORM, f"{name} did: {msg.content}")
        if msg.performative == P.REJECT_PROPOSAL:
            stored = keyvalue.get("rejections")
            keyvalue.set("rejections", str(int(stored.decode()) + 1 if stored else 1).encode())
            return None
        if msg.content == "rejections":
            stored = keyvalue.get("rejections")
            return reply(P.INFORM, stored.decode() if stored else "0")
        return reply(P.INFORM, f"{name} quotes {CONFIG['bid']}")
