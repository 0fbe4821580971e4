#!/usr/bin/env python3
"""A minimal A2A 1.0 server built with the official a2a-sdk (1.3.0).

Usage: python a2a_echo_server.py PORT [AGENT_NAME]

Serves one agent (default name "echo") on 127.0.0.1:PORT that answers every
message with a completed task carrying one text artifact "echo: <text>".
Test hooks: text starting with "slow" stays WORKING for 3 s before completing
(for SubscribeToTask / CancelTask tests); text starting with "msg " gets a
bare Message reply instead of a task.

Layout (mirrors Caxton's /a2a/{agent} layout so a2a_client.py works against
both):
  GET  /a2a/{agent}/.well-known/agent-card.json   agent card
  POST /a2a/{agent}                               JSON-RPC binding
  *    /a2a/{agent}/message:send, /tasks, ...     HTTP+JSON binding
Also served at the root for convenience:
  GET  /.well-known/agent-card.json               same card

Prints "ready" on stdout once the socket is listening.

If the environment variable A2A_WIRE_LOG is set to a file path, every HTTP
request/response (method, path, headers of interest, body) is appended to
that file as JSON lines -- used to capture the exact wire format.

Needs: pip install "a2a-sdk[http-server]==1.3.0" uvicorn
"""

import asyncio
import json
import os
import sys

import uvicorn

from starlette.applications import Starlette

from a2a.helpers.proto_helpers import (
    get_message_text,
    new_task_from_user_message,
    new_text_message,
    new_text_part,
)
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import (
    create_agent_card_routes,
    create_jsonrpc_routes,
    create_rest_routes,
)
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Role,
    TaskState,
)


class EchoExecutor(AgentExecutor):
    """Answers "echo: <text>" as a completed task with one artifact."""

    async def execute(
        self, context: RequestContext, event_queue: EventQueue
    ) -> None:
        text = get_message_text(context.message) if context.message else ''
        if text.startswith('msg '):
            # Message-only reply (no task): SendMessage result is {"message": ...}
            await event_queue.enqueue_event(
                new_text_message(f'echo: {text}', role=Role.ROLE_AGENT,
                                 context_id=context.context_id)
            )
            return
        task = context.current_task
        if task is None:
            # The first event for a new task MUST be the Task itself.
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.update_status(TaskState.TASK_STATE_WORKING)
        if text.startswith('slow'):
            # Test hook: stay WORKING for a while (SubscribeToTask / CancelTask).
            await asyncio.sleep(3)
        await updater.add_artifact(
            [new_text_part(f'echo: {text}')], name='reply', last_chunk=True
        )
        await updater.complete()

    async def cancel(
        self, context: RequestContext, event_queue: EventQueue
    ) -> None:
        updater = TaskUpdater(
            event_queue, context.task_id or '', context.context_id or ''
        )
        await updater.cancel()


def build_card(base_url: str, agent: str) -> AgentCard:
    url = f'{base_url}/a2a/{agent}'
    return AgentCard(
        name=agent,
        description='Echoes the text it receives.',
        version='1.0.0',
        supported_interfaces=[
            AgentInterface(
                url=url, protocol_binding='JSONRPC', protocol_version='1.0'
            ),
            AgentInterface(
                url=url, protocol_binding='HTTP+JSON', protocol_version='1.0'
            ),
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=['text/plain'],
        default_output_modes=['text/plain'],
        skills=[
            AgentSkill(
                id='echo',
                name='Echo',
                description='Repeats the input prefixed with "echo: ".',
                tags=['echo', 'test'],
            )
        ],
    )


class WireLog:
    """ASGI middleware appending request/response bodies as JSON lines."""

    def __init__(self, app, path: str):
        self.app = app
        self.path = path

    def _write(self, rec: dict) -> None:
        with open(self.path, 'a', encoding='utf-8') as f:
            f.write(json.dumps(rec) + '\n')

    async def __call__(self, scope, receive, send):
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return
        req_chunks: list[bytes] = []
        resp_chunks: list[bytes] = []
        status = {'code': None, 'headers': {}}

        async def recv():
            msg = await receive()
            if msg['type'] == 'http.request':
                req_chunks.append(msg.get('body', b''))
            return msg

        async def snd(msg):
            if msg['type'] == 'http.response.start':
                status['code'] = msg['status']
                status['headers'] = {
                    k.decode(): v.decode() for k, v in msg.get('headers', [])
                }
            elif msg['type'] == 'http.response.body':
                resp_chunks.append(msg.get('body', b''))
            await send(msg)

        try:
            await self.app(scope, recv, snd)
        finally:
            hdrs = {k.decode(): v.decode() for k, v in scope['headers']}
            keep = ('a2a-version', 'authorization', 'content-type', 'accept')
            self._write(
                {
                    'method': scope['method'],
                    'path': scope['path'],
                    'query': scope.get('query_string', b'').decode(),
                    'req_headers': {k: v for k, v in hdrs.items() if k in keep},
                    'req_body': b''.join(req_chunks).decode('utf-8', 'replace'),
                    'status': status['code'],
                    'resp_content_type': status['headers'].get('content-type'),
                    'resp_body': b''.join(resp_chunks).decode(
                        'utf-8', 'replace'
                    ),
                }
            )


def build_app(port: int, agent: str):
    base_url = f'http://127.0.0.1:{port}'
    card = build_card(base_url, agent)
    handler = DefaultRequestHandler(
        agent_executor=EchoExecutor(),
        task_store=InMemoryTaskStore(),
        agent_card=card,
    )
    prefix = f'/a2a/{agent}'
    routes = []
    routes += create_agent_card_routes(
        card, card_url=f'{prefix}/.well-known/agent-card.json'
    )
    routes += create_agent_card_routes(card)  # root well-known path too
    routes += create_jsonrpc_routes(handler, rpc_url=prefix)
    routes += create_rest_routes(handler, path_prefix=prefix)
    app = Starlette(routes=routes)
    wire = os.environ.get('A2A_WIRE_LOG')
    return WireLog(app, wire) if wire else app


async def main() -> None:
    if len(sys.argv) < 2:
        print('usage: a2a_echo_server.py PORT [AGENT]', file=sys.stderr)
        sys.exit(2)
    port = int(sys.argv[1])
    agent = sys.argv[2] if len(sys.argv) > 2 else 'echo'
    config = uvicorn.Config(
        build_app(port, agent),
        host='127.0.0.1',
        port=port,
        log_level='warning',
    )
    server = uvicorn.Server(config)
    serve = asyncio.create_task(server.serve())
    while not server.started:
        if serve.done():
            serve.result()  # re-raise startup failure
            sys.exit(1)
        await asyncio.sleep(0.05)
    print('ready', flush=True)
    await serve


if __name__ == '__main__':
    asyncio.run(main())
