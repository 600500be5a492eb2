// The extension's pure logic: settings -> bridge command, initialization options and command arguments.
// Nothing here imports `vscode`, so node's test runner checks it without an editor.

export type ApplyMode = "stream" | "final";

export const APPLY_MODES: readonly ApplyMode[] = ["stream", "final"];

/** The daemon's decoding strategies (blazedit_client.protocol.Strategy); "" leaves the choice to the daemon. */
export const STRATEGIES = ["", "regular", "pld", "draft", "multilayer"] as const;
export type StrategySetting = (typeof STRATEGIES)[number];

/** The `blazedit.*` settings a user can change (the API key lives in secret storage instead). */
export interface BlazeditSettings {
  daemonUrl: string;
  applyMode: ApplyMode;
  lspCommand: string[];
  lspPython: string;
  presets: string[];
  connectTimeout: number;
  eventTimeout: number;
  model: string; // "": the daemon's default
  strategy: StrategySetting;
  maxTokens: number; // 0: the daemon's limit
}

export const DEFAULTS: BlazeditSettings = {
  daemonUrl: "http://127.0.0.1:8000",
  applyMode: "stream",
  lspCommand: ["blazedit-lsp"],
  lspPython: "",
  presets: [],
  connectTimeout: 10,
  eventTimeout: 600,
  model: "",
  strategy: "",
  maxTokens: 0,
};

/** The bridge's `initializationOptions` and its `blazedit` configuration section (same shape, the keys of
 * lsp/README.md); what is left to the daemon is left out. */
export interface BridgeOptions {
  daemonUrl: string;
  applyMode: ApplyMode;
  presets: string[];
  connectTimeout: number;
  eventTimeout: number;
  model?: string;
  strategy?: Exclude<StrategySetting, "">;
  maxTokens?: number;
  apiKey?: string;
}

export interface LspPosition {
  line: number;
  character: number;
}

export interface LspRange {
  start: LspPosition;
  end: LspPosition;
}

/** The single argument object of the bridge's `blazedit.edit` command. */
export interface EditArguments {
  uri: string;
  instruction: string;
  range?: LspRange;
}

export class SettingsError extends Error {}

/** Reads one setting; `get(key)` returns undefined when the user has not set it. */
export type SettingReader = (key: string) => unknown;

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

/** The daemon URL schemes the bridge accepts (blazedit_lsp.options). */
const URL_SCHEMES = ["http:", "https:", "ws:", "wss:"];

/** Checks a daemon URL; returns a message for the user when the bridge would not accept it. */
export function daemonUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `"${url}" is not a URL (expected something like ${DEFAULTS.daemonUrl})`;
  }
  if (!URL_SCHEMES.includes(parsed.protocol) || parsed.host === "") {
    return `"${url}" must start with http://, https://, ws:// or wss:// and name a host`;
  }
  return undefined;
}

/** Collects the settings, reporting every invalid one and falling back to its default. */
export function readSettings(get: SettingReader): { settings: BlazeditSettings; problems: string[] } {
  const problems: string[] = [];
  const pick = <T>(key: string, fallback: T, valid: (value: unknown) => value is T, what: string): T => {
    const value = get(key);
    if (value === undefined || valid(value)) {
      return value ?? fallback;
    }
    problems.push(`blazedit.${key} must be ${what}; using ${JSON.stringify(fallback)}`);
    return fallback;
  };
  const isUrl = (value: unknown): value is string => typeof value === "string" && !daemonUrlProblem(value);
  const isMode = (value: unknown): value is ApplyMode => APPLY_MODES.includes(value as ApplyMode);
  const isCommand = (value: unknown): value is string[] => isStringArray(value) && value.length > 0 && value[0] !== "";
  const isString = (value: unknown): value is string => typeof value === "string";
  const isSeconds = (value: unknown): value is number => typeof value === "number" && value > 0;
  const isStrategy = (value: unknown): value is StrategySetting => STRATEGIES.includes(value as StrategySetting);
  const isTokens = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 0;
  const settings: BlazeditSettings = {
    daemonUrl: pick("daemonUrl", DEFAULTS.daemonUrl, isUrl, "an http(s) or ws(s) URL"),
    applyMode: pick("applyMode", DEFAULTS.applyMode, isMode, `one of ${APPLY_MODES.join(", ")}`),
    lspCommand: pick("lsp.command", DEFAULTS.lspCommand, isCommand, "a non-empty list of strings"),
    lspPython: pick("lsp.python", DEFAULTS.lspPython, isString, "a path"),
    presets: pick("presets", DEFAULTS.presets, isStringArray, "a list of strings"),
    connectTimeout: pick("connectTimeout", DEFAULTS.connectTimeout, isSeconds, "a number of seconds above 0"),
    eventTimeout: pick("eventTimeout", DEFAULTS.eventTimeout, isSeconds, "a number of seconds above 0"),
    model: pick("model", DEFAULTS.model, isString, "a model name"),
    strategy: pick("strategy", DEFAULTS.strategy, isStrategy, `one of ${STRATEGIES.filter(Boolean).join(", ")} or ""`),
    maxTokens: pick("maxTokens", DEFAULTS.maxTokens, isTokens, "a whole number (0: the daemon's limit)"),
  };
  return { settings, problems };
}

/** How to start the bridge: `<python> -m blazedit_lsp` when a Python is set, else the configured command. */
export function serverCommand(settings: BlazeditSettings): { command: string; args: string[] } {
  if (settings.lspPython.trim() !== "") {
    return { command: settings.lspPython.trim(), args: ["-m", "blazedit_lsp"] };
  }
  const [command, ...args] = settings.lspCommand;
  return { command, args };
}

export function bridgeOptions(settings: BlazeditSettings, apiKey: string | undefined): BridgeOptions {
  const options: BridgeOptions = {
    daemonUrl: settings.daemonUrl,
    applyMode: settings.applyMode,
    presets: settings.presets,
    connectTimeout: settings.connectTimeout,
    eventTimeout: settings.eventTimeout,
  };
  if (settings.model.trim() !== "") {
    options.model = settings.model.trim();
  }
  if (settings.strategy !== "") {
    options.strategy = settings.strategy;
  }
  if (settings.maxTokens > 0) {
    options.maxTokens = settings.maxTokens;
  }
  if (apiKey) {
    options.apiKey = apiKey;
  }
  return options;
}

/**
 * Answers a `workspace/configuration` request: the `blazedit` section gets the bridge options (with the
 * secret API key, which VS Code's settings never hold); other sections keep what VS Code found.
 */
export function answerConfiguration(
  sections: (string | undefined)[],
  fromEditor: unknown[],
  options: BridgeOptions,
): unknown[] {
  return sections.map((section, index) => (section === "blazedit" ? options : fromEditor[index]));
}

/** The instruction typed in the input box, or undefined when the user gave none. */
export function cleanInstruction(input: string | undefined): string | undefined {
  const trimmed = input?.trim();
  return trimmed ? trimmed : undefined;
}

export function editArguments(uri: string, instruction: string, range?: LspRange): EditArguments {
  return range === undefined ? { uri, instruction } : { uri, instruction, range };
}

export function isEmptyRange(range: LspRange): boolean {
  return range.start.line === range.end.line && range.start.character === range.end.character;
}

/** The message shown when the bridge cannot start, with what to do about it. */
export function bridgeStartHint(settings: BlazeditSettings, error: unknown): string {
  const { command, args } = serverCommand(settings);
  const reason = error instanceof Error ? error.message : String(error);
  return (
    `Blazedit could not start its bridge \`${[command, ...args].join(" ")}\` (${reason}). ` +
    "Install it with `pip install blazedit-lsp`, or point `blazedit.lsp.python` at a Python that has it."
  );
}
