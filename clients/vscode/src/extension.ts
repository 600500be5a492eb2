// VS Code side of blazedit: starts the `blazedit-lsp` bridge over stdio and turns the palette commands
// "Blazedit: Edit File…", "Edit Selection…" and "Cancel" into the bridge's `workspace/executeCommand` calls
// (`blazedit.edit`, `blazedit.cancel`). The bridge streams the edit back as `workspace/applyEdit` and reports
// progress (cancellable) through `window/workDoneProgress`, which the language client renders natively.

import * as vscode from "vscode";
import {
  ConfigurationParams,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  TransportKind,
} from "vscode-languageclient/node";

import {
  BlazeditSettings,
  LspRange,
  answerConfiguration,
  bridgeOptions,
  bridgeStartHint,
  cleanInstruction,
  editArguments,
  isEmptyRange,
  readSettings,
  serverCommand,
} from "./settings";

const API_KEY_SECRET = "blazedit.apiKey";

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
let secrets: vscode.SecretStorage;

/** The settings; invalid ones fall back to their defaults and, when `report` is set, are shown once. */
function currentSettings(report = false): BlazeditSettings {
  const config = vscode.workspace.getConfiguration("blazedit");
  const { settings, problems } = readSettings((key) => {
    const inspected = config.inspect(key);
    return inspected?.workspaceFolderValue ?? inspected?.workspaceValue ?? inspected?.globalValue;
  });
  for (const problem of report ? problems : []) {
    output.warn(problem);
    void vscode.window.showWarningMessage(`Blazedit: ${problem}`);
  }
  return settings;
}

async function currentOptions(settings: BlazeditSettings = currentSettings()) {
  return bridgeOptions(settings, await secrets.get(API_KEY_SECRET));
}

async function answerConfigurationRequest(
  params: ConfigurationParams,
  token: vscode.CancellationToken,
  next: (params: ConfigurationParams, token: vscode.CancellationToken) => unknown,
): Promise<unknown[]> {
  const fromEditor = (await next(params, token)) as unknown[];
  const sections = params.items.map((item) => item.section);
  return answerConfiguration(sections, fromEditor, await currentOptions());
}

async function startClient(): Promise<void> {
  const settings = currentSettings(true);
  const { command, args } = serverCommand(settings);
  const serverOptions: ServerOptions = { command, args, transport: TransportKind.stdio };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    outputChannel: output,
    initializationOptions: await currentOptions(settings),
    synchronize: { configurationSection: "blazedit" },
    middleware: { workspace: { configuration: answerConfigurationRequest } },
  };
  const started = new LanguageClient("blazedit", "Blazedit", serverOptions, clientOptions);
  try {
    await started.start();
    client = started;
  } catch (error) {
    void vscode.window.showErrorMessage(bridgeStartHint(settings, error));
  }
}

async function restartClient(): Promise<void> {
  const running = client;
  client = undefined;
  await running?.stop();
  await startClient();
}

async function runBridgeCommand(command: string, argument: object): Promise<void> {
  if (!client) {
    await startClient();
  }
  if (!client) {
    return;
  }
  try {
    await client.sendRequest(ExecuteCommandRequest.type, { command, arguments: [argument] });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    void vscode.window.showErrorMessage(`Blazedit: ${message}`);
  }
}

function activeEditor(): vscode.TextEditor | undefined {
  const editor = vscode.window.activeTextEditor;
  if (!editor) {
    void vscode.window.showErrorMessage("Blazedit: open a file to edit first.");
  }
  return editor;
}

async function askInstruction(prompt: string): Promise<string | undefined> {
  const input = await vscode.window.showInputBox({
    prompt,
    placeHolder: "e.g. add type hints and docstrings",
    ignoreFocusOut: true,
  });
  return cleanInstruction(input);
}

async function editFile(): Promise<void> {
  const editor = activeEditor();
  if (!editor) {
    return;
  }
  const instruction = await askInstruction("How should blazedit change this file?");
  if (instruction) {
    await runBridgeCommand("blazedit.edit", editArguments(editor.document.uri.toString(), instruction));
  }
}

async function editSelection(): Promise<void> {
  const editor = activeEditor();
  if (!editor) {
    return;
  }
  const range: LspRange = {
    start: { line: editor.selection.start.line, character: editor.selection.start.character },
    end: { line: editor.selection.end.line, character: editor.selection.end.character },
  };
  if (isEmptyRange(range)) {
    void vscode.window.showErrorMessage("Blazedit: select the code to edit first (or use Edit File…).");
    return;
  }
  const instruction = await askInstruction("How should blazedit change the selection?");
  if (instruction) {
    await runBridgeCommand("blazedit.edit", editArguments(editor.document.uri.toString(), instruction, range));
  }
}

async function cancelEdit(): Promise<void> {
  const uri = vscode.window.activeTextEditor?.document.uri.toString();
  await runBridgeCommand("blazedit.cancel", uri ? { uri } : {});
}

async function setApiKey(): Promise<void> {
  const key = await vscode.window.showInputBox({
    prompt: "The blazedit daemon's API key (leave empty to remove it)",
    password: true,
    ignoreFocusOut: true,
  });
  if (key === undefined) {
    return;
  }
  if (key.trim() === "") {
    await secrets.delete(API_KEY_SECRET);
  } else {
    await secrets.store(API_KEY_SECRET, key.trim());
  }
  await restartClient();
}

function onSettingsChanged(event: vscode.ConfigurationChangeEvent): void {
  // The bridge reads the other settings again on its own; only a new bridge command needs a restart.
  if (event.affectsConfiguration("blazedit.lsp")) {
    void restartClient();
  } else if (event.affectsConfiguration("blazedit")) {
    currentSettings(true);
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("Blazedit", { log: true });
  secrets = context.secrets;
  context.subscriptions.push(
    output,
    vscode.commands.registerCommand("blazedit.editFile", editFile),
    vscode.commands.registerCommand("blazedit.editSelection", editSelection),
    vscode.commands.registerCommand("blazedit.cancelEdit", cancelEdit),
    vscode.commands.registerCommand("blazedit.setApiKey", setApiKey),
    vscode.workspace.onDidChangeConfiguration(onSettingsChanged),
  );
  await startClient();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}
