// Unit tests of the extension's pure logic (node's test runner; no editor needed).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import {
  DEFAULTS,
  answerConfiguration,
  bridgeOptions,
  bridgeStartHint,
  cleanInstruction,
  daemonUrlProblem,
  editArguments,
  isEmptyRange,
  readSettings,
  serverCommand,
  STRATEGIES,
} from "../settings";

const manifest = JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8"));
const bridgeReadme = readFileSync(join(__dirname, "..", "..", "..", "..", "lsp", "README.md"), "utf8");

/** The setting keys lsp/README.md documents: the backquoted names in the first column of its table. */
function documentedBridgeSettings(): string[] {
  const section = bridgeReadme.split("## Settings")[1].split("\n## ")[0];
  const rows = section.split("\n").filter((line) => line.startsWith("| `"));
  return rows.flatMap((row) => [...row.split("|")[1].matchAll(/`(\w+)`/g)].map((match) => match[1]));
}

function reader(values: Record<string, unknown>) {
  return (key: string) => values[key];
}

describe("readSettings", () => {
  it("uses the defaults when nothing is set", () => {
    const { settings, problems } = readSettings(reader({}));
    assert.deepEqual(settings, DEFAULTS);
    assert.deepEqual(problems, []);
  });

  it("keeps valid values", () => {
    const { settings, problems } = readSettings(
      reader({
        daemonUrl: "https://gpu-box:9000",
        applyMode: "final",
        "lsp.command": ["uvx", "blazedit-lsp"],
        "lsp.python": "/opt/venv/bin/python",
        presets: ["Add logging"],
      }),
    );
    assert.deepEqual(problems, []);
    assert.equal(settings.daemonUrl, "https://gpu-box:9000");
    assert.equal(settings.applyMode, "final");
    assert.deepEqual(settings.lspCommand, ["uvx", "blazedit-lsp"]);
    assert.deepEqual(settings.presets, ["Add logging"]);
  });

  it("keeps the bridge's own settings", () => {
    const bridge = { connectTimeout: 2.5, eventTimeout: 60, model: "big", strategy: "pld", maxTokens: 512 };
    const { settings, problems } = readSettings(reader({ daemonUrl: "ws://gpu-box:9000", ...bridge }));
    assert.deepEqual(problems, []);
    assert.deepEqual(settings, { ...DEFAULTS, daemonUrl: "ws://gpu-box:9000", ...bridge });
  });

  it("reports each invalid value and falls back to its default", () => {
    const { settings, problems } = readSettings(
      reader({
        daemonUrl: "localhost:8000",
        applyMode: "live",
        "lsp.command": [],
        presets: [1, 2],
        connectTimeout: 0,
        eventTimeout: "long",
        model: 7,
        strategy: "fast",
        maxTokens: 1.5,
      }),
    );
    assert.deepEqual(settings, DEFAULTS);
    assert.equal(problems.length, 9);
    assert.match(problems[0], /blazedit\.daemonUrl must be an http\(s\) or ws\(s\) URL/);
    assert.match(problems[1], /blazedit\.applyMode must be one of stream, final/);
    assert.match(problems[2], /blazedit\.lsp\.command/);
    assert.match(problems[3], /blazedit\.presets/);
    assert.match(problems[4], /blazedit\.connectTimeout/);
    assert.match(problems[5], /blazedit\.eventTimeout/);
    assert.match(problems[6], /blazedit\.model/);
    assert.match(problems[7], /blazedit\.strategy must be one of regular, pld, draft, multilayer/);
    assert.match(problems[8], /blazedit\.maxTokens/);
  });
});

describe("package.json", () => {
  const properties = manifest.contributes.configuration.properties;

  it("declares the same defaults as the code", () => {
    assert.equal(properties["blazedit.daemonUrl"].default, DEFAULTS.daemonUrl);
    assert.equal(properties["blazedit.applyMode"].default, DEFAULTS.applyMode);
    assert.deepEqual(properties["blazedit.applyMode"].enum, ["stream", "final"]);
    assert.deepEqual(properties["blazedit.lsp.command"].default, DEFAULTS.lspCommand);
    assert.equal(properties["blazedit.lsp.python"].default, DEFAULTS.lspPython);
    assert.deepEqual(properties["blazedit.presets"].default, DEFAULTS.presets);
    assert.equal(properties["blazedit.connectTimeout"].default, DEFAULTS.connectTimeout);
    assert.equal(properties["blazedit.eventTimeout"].default, DEFAULTS.eventTimeout);
    assert.equal(properties["blazedit.model"].default, DEFAULTS.model);
    assert.deepEqual(properties["blazedit.strategy"].enum, STRATEGIES);
    assert.equal(properties["blazedit.strategy"].default, DEFAULTS.strategy);
    assert.equal(properties["blazedit.maxTokens"].default, DEFAULTS.maxTokens);
  });

  it("offers every setting the bridge documents (the API key through Set API Key)", () => {
    const documented = documentedBridgeSettings();
    assert.ok(documented.length >= 9, documented.join(", "));
    for (const key of documented.filter((key) => key !== "apiKey")) {
      assert.ok(`blazedit.${key}` in properties, `blazedit.${key} is not contributed`);
    }
  });

  it("does not claim the bridge's own command ids", () => {
    // vscode-languageclient registers blazedit.edit / blazedit.cancel itself; a duplicate would fail to activate.
    const ids: string[] = manifest.contributes.commands.map((command: { command: string }) => command.command);
    for (const bridgeCommand of ["blazedit.edit", "blazedit.editFromComment", "blazedit.cancel"]) {
      assert.ok(!ids.includes(bridgeCommand), bridgeCommand);
    }
    assert.deepEqual(ids.sort(), ["blazedit.cancelEdit", "blazedit.editFile", "blazedit.editSelection", "blazedit.setApiKey"]);
  });
});

describe("daemonUrlProblem", () => {
  it("accepts http and https URLs", () => {
    assert.equal(daemonUrlProblem("http://127.0.0.1:8000"), undefined);
    assert.equal(daemonUrlProblem("https://edits.example.org/"), undefined);
  });

  it("accepts ws and wss URLs, as the bridge does", () => {
    assert.equal(daemonUrlProblem("ws://127.0.0.1:8000"), undefined);
    assert.equal(daemonUrlProblem("wss://edits.example.org"), undefined);
  });

  it("explains what is wrong otherwise", () => {
    assert.match(daemonUrlProblem("not a url") ?? "", /is not a URL/);
    assert.match(daemonUrlProblem("ftp://127.0.0.1:8000") ?? "", /must start with http/);
    assert.match(daemonUrlProblem("http:") ?? "", /is not a URL|name a host/);
  });
});

describe("serverCommand", () => {
  it("runs the configured command", () => {
    assert.deepEqual(serverCommand({ ...DEFAULTS, lspCommand: ["blazedit-lsp", "--log-level", "debug"] }), {
      command: "blazedit-lsp",
      args: ["--log-level", "debug"],
    });
  });

  it("prefers a configured Python", () => {
    assert.deepEqual(serverCommand({ ...DEFAULTS, lspPython: " /venv/bin/python " }), {
      command: "/venv/bin/python",
      args: ["-m", "blazedit_lsp"],
    });
  });

  it("names the command and the fix when the bridge cannot start", () => {
    const hint = bridgeStartHint(DEFAULTS, new Error("spawn blazedit-lsp ENOENT"));
    assert.match(hint, /`blazedit-lsp` \(spawn blazedit-lsp ENOENT\)/);
    assert.match(hint, /pip install blazedit-lsp/);
  });
});

describe("bridge options", () => {
  it("carries the API key only when there is one", () => {
    assert.deepEqual(bridgeOptions(DEFAULTS, undefined), {
      daemonUrl: "http://127.0.0.1:8000",
      applyMode: "stream",
      presets: [],
      connectTimeout: 10,
      eventTimeout: 600,
    });
    assert.equal(bridgeOptions(DEFAULTS, "s3cret").apiKey, "s3cret");
    assert.equal("apiKey" in bridgeOptions(DEFAULTS, ""), false);
  });

  it("forwards every documented bridge setting that is set, and leaves the rest to the daemon", () => {
    const settings = { ...DEFAULTS, model: " big ", strategy: "multilayer" as const, maxTokens: 256 };
    const options = bridgeOptions(settings, "k");
    assert.deepEqual(Object.keys(options).sort(), [...documentedBridgeSettings()].sort());
    assert.deepEqual([options.model, options.strategy, options.maxTokens], ["big", "multilayer", 256]);
  });

  it("answers the blazedit section with the options and leaves other sections alone", () => {
    const options = bridgeOptions(DEFAULTS, "k");
    const answer = answerConfiguration(["editor", "blazedit", undefined], [{ tabSize: 4 }, { daemonUrl: "x" }, null], options);
    assert.deepEqual(answer, [{ tabSize: 4 }, options, null]);
  });
});

describe("edit arguments", () => {
  const range = { start: { line: 2, character: 0 }, end: { line: 5, character: 3 } };

  it("sends the whole document without a range", () => {
    assert.deepEqual(editArguments("file:///a.py", "add types"), { uri: "file:///a.py", instruction: "add types" });
  });

  it("sends the selection as an LSP range", () => {
    assert.deepEqual(editArguments("file:///a.py", "add types", range), {
      uri: "file:///a.py",
      instruction: "add types",
      range,
    });
  });

  it("treats a bare cursor as no selection", () => {
    assert.equal(isEmptyRange(range), false);
    assert.equal(isEmptyRange({ start: range.start, end: { ...range.start } }), true);
  });

  it("drops an empty or cancelled instruction", () => {
    assert.equal(cleanInstruction(undefined), undefined);
    assert.equal(cleanInstruction("   "), undefined);
    assert.equal(cleanInstruction("  rename x to count \n"), "rename x to count");
  });
});
