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
} from "../settings";

const manifest = JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8"));

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

  it("reports each invalid value and falls back to its default", () => {
    const { settings, problems } = readSettings(
      reader({ daemonUrl: "localhost:8000", applyMode: "live", "lsp.command": [], presets: [1, 2] }),
    );
    assert.deepEqual(settings, DEFAULTS);
    assert.equal(problems.length, 4);
    assert.match(problems[0], /blazedit\.daemonUrl must be an http\(s\) URL/);
    assert.match(problems[1], /blazedit\.applyMode must be one of stream, final/);
    assert.match(problems[2], /blazedit\.lsp\.command/);
    assert.match(problems[3], /blazedit\.presets/);
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

  it("explains what is wrong otherwise", () => {
    assert.match(daemonUrlProblem("not a url") ?? "", /is not a URL/);
    assert.match(daemonUrlProblem("ws://127.0.0.1:8000") ?? "", /must start with http/);
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
    });
    assert.equal(bridgeOptions(DEFAULTS, "s3cret").apiKey, "s3cret");
    assert.equal("apiKey" in bridgeOptions(DEFAULTS, ""), false);
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
