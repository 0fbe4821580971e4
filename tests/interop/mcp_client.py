"""Drives Caxton's MCP server with the official MCP Python SDK (pinned in
scripts/test), over Streamable HTTP or stdio, and checks every tool.

    python mcp_client.py http  URL TOKEN PREFIX
    python mcp_client.py stdio CAXTON_BIN SERVER_URL TOKEN PREFIX

PREFIX keeps the entities of one run apart from another's. Exits non-zero
with a message on the first thing that is not as expected; prints one JSON
line of facts for the Rust test to check on success.
"""

import asyncio
import json
import sys

import mcp.types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

EXPECTED_TOOLS = {
    "create_entities", "create_relations", "add_observations", "delete_entities",
    "delete_observations", "delete_relations", "read_graph", "search_nodes",
    "open_nodes", "search", "traverse", "list_agents", "ask_agent",
}


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def text_of(result):
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def call(session, name, arguments, expect_error=False):
    result = await session.call_tool(name, arguments)
    if bool(result.is_error) != expect_error:
        fail(f"{name}({json.dumps(arguments)}): is_error={result.is_error}: {text_of(result)}")
    return result


def names(graph):
    return sorted(e["name"] for e in graph["entities"])


async def exercise(session, prefix):
    init = await session.initialize()
    if init.server_info.name != "caxton":
        fail(f"server name is {init.server_info.name}")
    listed = await session.list_tools()
    tools = {t.name for t in listed.tools}
    if not EXPECTED_TOOLS <= tools:
        fail(f"missing tools: {sorted(EXPECTED_TOOLS - tools)}")

    ada, engine, babbage = f"{prefix} Ada Lovelace", f"{prefix} Analytical Engine", f"{prefix} Charles Babbage"
    created = await call(session, "create_entities", {"entities": [
        {"name": ada, "entityType": "person", "observations": ["wrote the first published computer program"]},
        {"name": engine, "entityType": "machine", "observations": ["a mechanical general-purpose computer"]},
        {"name": babbage, "entityType": "person", "observations": ["designed the difference engine"]},
    ]})
    if len(created.structured_content["entities"]) != 3:
        fail(f"create_entities answered {created.structured_content}")
    await call(session, "create_relations", {"relations": [
        {"from": ada, "to": engine, "relationType": "wrote programs for"},
        {"from": babbage, "to": engine, "relationType": "designed"},
    ]})
    added = await call(session, "add_observations", {"observations": [
        {"entityName": ada, "contents": ["born in 1815", "wrote the first published computer program"]},
    ]})
    new = added.structured_content["results"][0]["addedObservations"]
    if new != ["born in 1815"]:
        fail(f"add_observations should report only the new observation, got {new}")
    missing = await call(session, "add_observations", {"observations": [
        {"entityName": f"{prefix} nobody", "contents": ["x"]}]}, expect_error=True)

    opened = (await call(session, "open_nodes", {"names": [ada, engine]})).structured_content
    if names(opened) != sorted([ada, engine]):
        fail(f"open_nodes gave {names(opened)}")
    ada_node = next(e for e in opened["entities"] if e["name"] == ada)
    if ada_node["entityType"] != "person" or "born in 1815" not in ada_node["observations"]:
        fail(f"open_nodes entity shape: {ada_node}")
    if not any(r["relationType"] == "wrote programs for" for r in opened["relations"]):
        fail(f"open_nodes relations: {opened['relations']}")

    # Meaning, not words: no observation says "programmer" or "software".
    found = (await call(session, "search_nodes", {"query": "who was the first software programmer"})).structured_content
    if ada not in names(found):
        fail(f"search_nodes did not find Ada: {names(found)}")
    ranked = (await call(session, "search", {"query": "mechanical computer", "limit": 5})).structured_content
    if not ranked["results"] or "score" not in ranked["results"][0]:
        fail(f"search results: {ranked}")
    walked = (await call(session, "traverse", {"start": babbage, "max_depth": 1})).structured_content
    reached = sorted(n["entity"]["name"] for n in walked["nodes"])
    if engine not in reached:
        fail(f"traverse from Babbage reached {reached}")

    graph = (await call(session, "read_graph", {})).structured_content
    if not {ada, engine, babbage} <= set(names(graph)):
        fail("read_graph lacks the new entities")

    await call(session, "delete_observations", {"deletions": [{"entityName": ada, "observations": ["born in 1815"]}]})
    await call(session, "delete_relations", {"relations": [{"from": babbage, "to": engine, "relationType": "designed"}]})
    after = (await call(session, "open_nodes", {"names": [ada, babbage, engine]})).structured_content
    if "born in 1815" in next(e for e in after["entities"] if e["name"] == ada)["observations"]:
        fail("delete_observations left the observation")
    if any(r["relationType"] == "designed" for r in after["relations"]):
        fail("delete_relations left the relation")
    await call(session, "delete_entities", {"entityNames": [ada, engine, babbage]})
    gone = (await call(session, "open_nodes", {"names": [ada, engine, babbage]})).structured_content
    if gone["entities"]:
        fail(f"delete_entities left {names(gone)}")

    agents = (await call(session, "list_agents", {})).structured_content["agents"]
    if not any(a["name"] == "echo" for a in agents):
        fail(f"list_agents: {agents}")
    answer = (await call(session, "ask_agent", {"agent": "echo", "message": f"hello from {prefix}"})).structured_content
    unknown = await call(session, "ask_agent", {"agent": "no-such-agent", "message": "hi"}, expect_error=True)
    bad = await call(session, "create_entities", {"entities": [{"name": "x"}]}, expect_error=True)
    print(json.dumps({
        "tools": sorted(tools),
        "echo_answer": answer["answer"],
        "missing_entity_error": text_of(missing),
        "unknown_agent_error": text_of(unknown),
        "bad_arguments_error": text_of(bad),
    }))


async def over_http(url, token, prefix):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await exercise(session, prefix)


async def over_stdio(binary, server, token, prefix):
    params = StdioServerParameters(
        command=binary, args=["mcp", "serve"],
        env={"CAXTON_SERVER": server, "CAXTON_TOKEN": token},
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await exercise(session, prefix)


def main():
    mode = sys.argv[1]
    if mode == "http":
        asyncio.run(over_http(sys.argv[2], sys.argv[3], sys.argv[4]))
    elif mode == "stdio":
        asyncio.run(over_stdio(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]))
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
