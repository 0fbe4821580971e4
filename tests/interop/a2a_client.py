#!/usr/bin/env python3
"""Drive an A2A 1.0 agent with the official a2a-sdk (1.3.0) client.

Usage: python a2a_client.py BASE_URL AGENT TOKEN_OR_EMPTY [TRANSPORT]

  BASE_URL   e.g. http://127.0.0.1:8080
  AGENT      agent name; the card is fetched from
             BASE_URL/a2a/AGENT/.well-known/agent-card.json
  TOKEN      bearer token ('' for none); sent as "Authorization: Bearer ..."
             on every request, including the card fetch
  TRANSPORT  optional: "jsonrpc" (default) or "rest" (HTTP+JSON); the client
             only offers that binding, so the card must list it in
             supportedInterfaces

Steps: (a) resolve card, (b) non-streaming SendMessage "hello a2a",
(c) streaming SendStreamingMessage, (d) GetTask, (e) ListTasks,
(f) CancelTask on a completed task (expects an error), (g) GetTask on an
unknown id (expects an error).

Prints progress to stderr and ONE JSON object on stdout at the end with keys:
card_name, send_state, send_text, context_id, stream_events, stream_text,
get_state, list_count, cancel_error_code, unknown_error_code (plus transport,
task_id, stream_state, stream_task_id).  The *_error_code values are the
JSON-RPC error codes the SDK maps the raised exception class to (e.g.
TaskNotCancelableError -> -32002, TaskNotFoundError -> -32001), for both
transports.  Exits non-zero with a message on any unexpected exception.

Needs: pip install a2a-sdk==1.3.0
"""

import asyncio
import json
import sys
import traceback
import uuid

import httpx

from a2a.client import (
    A2ACardResolver,
    ClientConfig,
    ClientFactory,
)
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
)
from a2a.utils.constants import TransportProtocol
from a2a.utils.errors import JSON_RPC_ERROR_CODE_MAP, A2AError


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def fail(msg: str) -> None:
    print(f'a2a_client: FAIL: {msg}', file=sys.stderr, flush=True)
    sys.exit(1)


def state_name(state: int) -> str:
    return TaskState.Name(state)


def artifact_text(task: Task) -> str:
    texts = []
    for art in task.artifacts:
        for part in art.parts:
            if part.HasField('text'):
                texts.append(part.text)
    return '\n'.join(texts)


def error_code(exc: BaseException) -> int | None:
    """JSON-RPC code of an SDK A2AError subclass (None if not mapped)."""
    for cls in type(exc).__mro__:
        if cls in JSON_RPC_ERROR_CODE_MAP:
            return JSON_RPC_ERROR_CODE_MAP[cls]
    return None


def user_message(text: str) -> Message:
    return Message(
        message_id=str(uuid.uuid4()),
        role=Role.ROLE_USER,
        parts=[Part(text=text)],
    )


async def run(base_url: str, agent: str, token: str, transport: str) -> dict:
    headers = {}
    if token:
        headers['Authorization'] = f'Bearer {token}'
    binding = {
        'jsonrpc': TransportProtocol.JSONRPC,
        'rest': TransportProtocol.HTTP_JSON,
        'http+json': TransportProtocol.HTTP_JSON,
    }[transport.lower()]

    out: dict = {'transport': str(binding.value)}
    async with httpx.AsyncClient(headers=headers, timeout=30.0) as http:
        # (a) card
        card_base = f'{base_url.rstrip("/")}/a2a/{agent}'
        resolver = A2ACardResolver(http, card_base)
        card = await resolver.get_agent_card()
        out['card_name'] = card.name
        log(
            'card:', card.name, 'streaming=', card.capabilities.streaming,
            'interfaces=',
            [
                (i.protocol_binding, i.url, i.protocol_version)
                for i in card.supported_interfaces
            ],
        )

        def make_client(streaming: bool):
            cfg = ClientConfig(
                streaming=streaming,
                httpx_client=http,  # shared: carries Authorization header
                supported_protocol_bindings=[binding],
            )
            return ClientFactory(cfg).create(card)

        unary = make_client(streaming=False)
        streamer = make_client(streaming=True)

        # (b) non-streaming send
        events = []
        async for ev in unary.send_message(
            SendMessageRequest(message=user_message('hello a2a'))
        ):
            events.append(ev)
        if len(events) != 1 or not events[0].HasField('task'):
            fail(f'SendMessage: expected one task response, got {events}')
        task = events[0].task
        out['task_id'] = task.id
        out['context_id'] = task.context_id
        out['send_state'] = state_name(task.status.state)
        out['send_text'] = artifact_text(task)
        log('send:', out['send_state'], repr(out['send_text']))

        # (c) streaming send
        kinds = []
        stream_text = []
        stream_state = None
        stream_task_id = None
        ev: StreamResponse
        async for ev in streamer.send_message(
            SendMessageRequest(message=user_message('hello a2a'))
        ):
            kind = ev.WhichOneof('payload')
            kinds.append(kind)
            if kind == 'task':
                stream_task_id = ev.task.id
                stream_state = state_name(ev.task.status.state)
                t = artifact_text(ev.task)
                if t:
                    stream_text.append(t)
            elif kind == 'status_update':
                stream_task_id = ev.status_update.task_id
                stream_state = state_name(ev.status_update.status.state)
            elif kind == 'artifact_update':
                for part in ev.artifact_update.artifact.parts:
                    if part.HasField('text'):
                        stream_text.append(part.text)
            elif kind == 'message':
                for part in ev.message.parts:
                    if part.HasField('text'):
                        stream_text.append(part.text)
        out['stream_events'] = kinds
        out['stream_text'] = ''.join(stream_text)
        out['stream_state'] = stream_state
        out['stream_task_id'] = stream_task_id
        log('stream:', kinds, repr(out['stream_text']), stream_state)

        # (d) GetTask
        got = await unary.get_task(GetTaskRequest(id=task.id, history_length=10))
        if got.id != task.id:
            fail(f'GetTask returned id {got.id!r}, want {task.id!r}')
        out['get_state'] = state_name(got.status.state)
        log('get:', out['get_state'], 'history', len(got.history))

        # (e) ListTasks
        listed = await unary.list_tasks(ListTasksRequest(page_size=50))
        out['list_count'] = len(listed.tasks)
        out['list_total_size'] = listed.total_size
        log('list:', len(listed.tasks), 'total', listed.total_size)

        # (f) CancelTask on a completed task -> TaskNotCancelableError
        try:
            res = await unary.cancel_task(CancelTaskRequest(id=task.id))
            out['cancel_error_code'] = None
            log('cancel: unexpectedly succeeded:', state_name(res.status.state))
        except A2AError as e:
            out['cancel_error_code'] = error_code(e)
            out['cancel_error'] = f'{type(e).__name__}: {e}'
            log('cancel error:', out['cancel_error'])

        # (g) GetTask unknown -> TaskNotFoundError
        try:
            await unary.get_task(GetTaskRequest(id=f'no-such-{uuid.uuid4()}'))
            out['unknown_error_code'] = None
            log('unknown get: unexpectedly succeeded')
        except A2AError as e:
            out['unknown_error_code'] = error_code(e)
            out['unknown_error'] = f'{type(e).__name__}: {e}'
            log('unknown error:', out['unknown_error'])

        await unary.close()
        await streamer.close()
    return out


def main() -> None:
    if len(sys.argv) not in (4, 5):
        print(
            'usage: a2a_client.py BASE_URL AGENT TOKEN_OR_EMPTY [jsonrpc|rest]',
            file=sys.stderr,
        )
        sys.exit(2)
    base_url, agent, token = sys.argv[1], sys.argv[2], sys.argv[3]
    transport = sys.argv[4] if len(sys.argv) == 5 else 'jsonrpc'
    try:
        result = asyncio.run(run(base_url, agent, token, transport))
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001
        traceback.print_exc(file=sys.stderr)
        fail(f'unexpected {type(e).__name__}: {e}')
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
    main()
