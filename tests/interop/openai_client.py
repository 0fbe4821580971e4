"""Talks to Caxton's OpenAI-compatible API with the official `openai`
Python client (pinned in scripts/test).

    python openai_client.py BASE_URL TOKEN MODEL PROMPT [MODEL PROMPT ...]

For each model (an agent name): one completion, one streamed completion
with usage, and a two-turn conversation. Also checks /v1/models and the
error for an unknown model. Prints one JSON object of what it saw.
"""

import json
import sys

import openai
from openai import OpenAI


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    base_url, token = sys.argv[1], sys.argv[2]
    pairs = sys.argv[3:]
    client = OpenAI(base_url=base_url, api_key=token, max_retries=0, timeout=120)
    listed = [m.id for m in client.models.list()]
    seen = {"models": listed, "agents": {}}
    for model, prompt in zip(pairs[0::2], pairs[1::2]):
        if model not in listed:
            fail(f"{model} is not in /v1/models: {listed}")
        whole = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}]
        )
        choice = whole.choices[0]
        if choice.message.role != "assistant" or choice.finish_reason != "stop":
            fail(f"{model}: unexpected choice {choice}")
        if whole.model != model or not whole.id.startswith("chatcmpl-"):
            fail(f"{model}: unexpected envelope {whole}")

        pieces, usage, finish = [], None, None
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for c in chunk.choices:
                if c.delta.content:
                    pieces.append(c.delta.content)
                if c.finish_reason:
                    finish = c.finish_reason
        if finish != "stop" or usage is None:
            fail(f"{model}: stream ended with finish={finish} usage={usage}")

        follow_up = client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": choice.message.content},
                {"role": "user", "content": "and once more"},
            ],
        )
        seen["agents"][model] = {
            "content": choice.message.content,
            "usage": whole.usage.model_dump() if whole.usage else None,
            "streamed": "".join(pieces),
            "stream_usage": usage.model_dump(),
            "follow_up": follow_up.choices[0].message.content,
        }
    try:
        client.chat.completions.create(
            model="no-such-agent", messages=[{"role": "user", "content": "hi"}]
        )
        fail("an unknown model was answered")
    except openai.NotFoundError as e:
        seen["unknown_model_error"] = str(e)
    try:
        client.chat.completions.create(model=pairs[0], messages=[])
        fail("an empty conversation was answered")
    except openai.BadRequestError as e:
        seen["empty_messages_error"] = str(e)
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
