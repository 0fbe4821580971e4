"""A Caxton agent written in Python, built with componentize-py against the
same `wit/` contract as the Rust agents.

It answers every request with the reversed text and a running count of the
messages it has seen, kept in the host's durable key-value store.

Build (from the repository root):
    componentize-py -d wit -w agent componentize -p examples/python/py-echo app -o py-echo.wasm
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent_handler
from wit_world.imports import keyvalue, logging, types


class AgentHandler(exports.AgentHandler):
    def init(self, config_json: str) -> None:
        try:
            json.loads(config_json)
        except ValueError as e:
            raise Err(types.Error_InvalidInput(f"config is not JSON: {e}"))

    def describe(self) -> agent_handler.AgentInfo:
        return agent_handler.AgentInfo(
            capabilities=["reversing"],
            description="Python agent: reverses text and counts messages",
            subscriptions=[],
        )

    def handle_message(self, msg: types.Message):
        stored = keyvalue.get("seen")
        seen = int(stored.decode()) + 1 if stored else 1
        keyvalue.set("seen", str(seen).encode())
        logging.log(logging.Level.INFO, f"message {seen} from {msg.sender}")
        return types.Reply(
            performative=types.Performative.INFORM,
            content=json.dumps({"reversed": msg.content[::-1], "seen": seen}),
            content_type="application/json",
        )
