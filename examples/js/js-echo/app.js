// A Caxton agent written in JavaScript, built with jco (componentize-js)
// against the frozen 0.1.0 contract (wit/deps/caxton-agent-0.1.0): a
// component built before caxton:agent@0.2.0 existed, which the host still
// runs unchanged (the tests deploy it).
//
// It answers every request with the text in capitals and a running count
// of the messages it has seen. The count lives in the host's durable
// key-value store, not in a module variable: a fresh instance (after a
// trap, a limit hit or a restart) starts from the module's initial state.
//
// Build (from the repository root), with the versions pinned in
// examples/js/package.json:
//   npx jco componentize examples/js/js-echo/app.js --wit wit/deps/caxton-agent-0.1.0/caxton.wit \
//     --world-name agent --disable http --disable fetch-event -o js-echo.wasm

import { get, set } from "caxton:agent/keyvalue@0.1.0";
import { log } from "caxton:agent/logging@0.1.0";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const agentHandler = {
  init(configJson) {
    try {
      JSON.parse(configJson);
    } catch (e) {
      // A thrown { tag, val } is the WIT `error` variant.
      throw { tag: "invalid-input", val: `config is not JSON: ${e}` };
    }
  },

  describe() {
    return {
      capabilities: ["shouting"],
      description: "JavaScript agent: answers in capitals and counts messages",
    };
  },

  handleMessage(msg) {
    const stored = get("seen");
    const seen = stored === undefined ? 1 : Number(decoder.decode(stored)) + 1;
    set("seen", encoder.encode(String(seen)));
    log("info", `message ${seen} from ${msg.sender}`);
    return {
      performative: "inform",
      content: JSON.stringify({ shouted: msg.content.toUpperCase(), seen }),
      contentType: "application/json",
    };
  },
};
