"""An MCP server built with the official MCP Python SDK (pinned in
scripts/test), served over Streamable HTTP behind a bearer token: the
other side of Caxton's `mcp_servers` with a `url`.

    python mcp_http_server.py PORT TOKEN
"""

import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer(name="shouter", version="1.0.0")


@server.tool()
def shout(text: str) -> str:
    """Answers the text in capitals."""
    return text.upper()


def bearer_only(app, token):
    async def guarded(scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if headers.get(b"authorization") != f"Bearer {token}".encode():
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"error": "unauthorized"}'})
                return
        await app(scope, receive, send)
    return guarded


if __name__ == "__main__":
    port, token = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(bearer_only(server.streamable_http_app(), token), host="127.0.0.1",
                port=port, log_level="warning", lifespan="on")
