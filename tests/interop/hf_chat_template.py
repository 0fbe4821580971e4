"""Renders a GGUF's chat template with Jinja2 set up the way Hugging Face
transformers sets it up in `apply_chat_template` (sandboxed environment,
trim_blocks and lstrip_blocks, loop controls, `tojson` as `json.dumps`
with ensure_ascii=False, `raise_exception`), for two conversations written
the way a transformers user writes them.

Usage: hf_chat_template.py INPUT.json
INPUT: {"template": str, "bos_token": str, "eos_token": str}
Prints one JSON line: {"with_tools": prompt, "plain": prompt}.
"""

import json
import sys

from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        given = json.load(f)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    template = env.from_string(given["template"])

    def render(messages, tools=None):
        return template.render(
            messages=messages,
            tools=tools,
            add_generation_prompt=True,
            bos_token=given["bos_token"],
            eos_token=given["eos_token"],
        )

    # JSON Schema keys in alphabetical order: the server keeps schemas as
    # serde_json maps, which sort their keys.
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": {
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                    "type": "object",
                },
            },
        }
    ]
    with_tools = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris? Réponds en français."},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
            ],
        },
        {"role": "tool", "content": '{"temp": 21}'},
        {"role": "tool", "content": '{"wind": "calm"}'},
        {"role": "assistant", "content": "21 °C, calme."},
        {"role": "user", "content": "Merci <3"},
    ]
    plain = [{"role": "user", "content": "Hello!"}]
    print(json.dumps({"with_tools": render(with_tools, tools), "plain": render(plain)}))


if __name__ == "__main__":
    main()
