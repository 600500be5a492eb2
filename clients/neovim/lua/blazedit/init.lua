-- blazedit for Neovim: starts the `blazedit-lsp` bridge through Neovim's LSP client and adds
-- :BlazeditEdit {instruction} (whole buffer, or the lines of a range / visual selection) and :BlazeditCancel,
-- which call the bridge's `workspace/executeCommand` commands `blazedit.edit` and `blazedit.cancel`.
-- The bridge streams the edit back as `workspace/applyEdit`; Neovim applies it with its own handler.
-- Works with Neovim 0.7 and later (vim.lsp.start where it exists, start_client + buf_attach_client before).

local M = {}

local DEFAULTS = {
  cmd = { "blazedit-lsp" },
  daemon_url = "http://127.0.0.1:8000",
  api_key = nil, -- nil: $BLAZEDIT_API_KEY, when set
  apply_mode = "stream", -- "stream": apply each stable hunk as it arrives; "final": one edit at the end
  presets = nil, -- extra instructions offered as code actions on a selection
  -- nil: the bridge's defaults (lsp/README.md)
  connect_timeout = nil, -- seconds to open the daemon's WebSocket
  event_timeout = nil, -- seconds the daemon may stay silent mid-edit
  model = nil, -- sent with each edit (nil: the daemon's)
  strategy = nil, -- "regular", "pld", "draft" or "multilayer" (nil: the daemon's)
  max_tokens = nil, -- the most tokens the model may write for one edit (nil: the daemon's limit)
}

local OPTION_TYPES = {
  cmd = "table",
  daemon_url = "string",
  api_key = "string",
  apply_mode = "string",
  presets = "table",
  connect_timeout = "number",
  event_timeout = "number",
  model = "string",
  strategy = "string",
  max_tokens = "number",
}
local APPLY_MODES = { stream = true, final = true }
local STRATEGIES = { regular = true, pld = true, draft = true, multilayer = true }

local config = vim.deepcopy(DEFAULTS)
-- running[bufnr]: the id of the bridge running the buffer's edit, or true until the edit reaches one
local state = { client_id = nil, pending = {}, running = {}, results = {} }

local function notify(message, level)
  vim.notify("blazedit: " .. message, level or vim.log.levels.INFO)
end

local function check_options(opts)
  for key, value in pairs(opts) do
    local expected = OPTION_TYPES[key]
    if not expected then
      error(string.format("blazedit.setup: unknown option '%s'", key), 3)
    end
    if type(value) ~= expected then
      error(string.format("blazedit.setup: %s must be a %s, not a %s", key, expected, type(value)), 3)
    end
  end
  if opts.apply_mode ~= nil and not APPLY_MODES[opts.apply_mode] then
    error("blazedit.setup: apply_mode must be 'stream' or 'final', not '" .. opts.apply_mode .. "'", 3)
  end
  if opts.cmd ~= nil and type(opts.cmd[1]) ~= "string" then
    error("blazedit.setup: cmd must be a list such as { 'blazedit-lsp' }", 3)
  end
  for _, key in ipairs({ "connect_timeout", "event_timeout" }) do
    if opts[key] ~= nil and opts[key] <= 0 then
      error("blazedit.setup: " .. key .. " must be a number of seconds above 0", 3)
    end
  end
  if opts.strategy ~= nil and not STRATEGIES[opts.strategy] then
    local message = "blazedit.setup: strategy must be 'regular', 'pld', 'draft' or 'multilayer', not '%s'"
    error(string.format(message, opts.strategy), 3)
  end
  if opts.max_tokens ~= nil and (opts.max_tokens < 1 or opts.max_tokens % 1 ~= 0) then
    error("blazedit.setup: max_tokens must be a whole number above 0", 3)
  end
end

-- Neovim 0.11 made client methods take self (client:request); 0.7-0.10 have plain functions.
local METHOD_CALLS = vim.fn.has("nvim-0.11") == 1

local function request(client, method, params, handler, bufnr)
  if METHOD_CALLS then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local function is_stopped(client)
  if METHOD_CALLS then
    return client:is_stopped()
  end
  return client.is_stopped()
end

--- The bridge's initialization options and `blazedit` configuration section (same shape, the keys of
--- lsp/README.md); options left nil are left out, so the bridge's and the daemon's defaults apply.
function M.bridge_options()
  return {
    daemonUrl = config.daemon_url,
    applyMode = config.apply_mode,
    apiKey = config.api_key or os.getenv("BLAZEDIT_API_KEY"),
    presets = config.presets,
    connectTimeout = config.connect_timeout,
    eventTimeout = config.event_timeout,
    model = config.model,
    strategy = config.strategy,
    maxTokens = config.max_tokens,
  }
end

-- The bridge shows its own messages (errors, a partial edit, hunks skipped because you typed there);
-- here an edit that went through is summed up, and a failed request reported.
local function finish(bufnr, err, result)
  if state.running[bufnr] == nil then -- already ended: the bridge exited first
    return
  end
  state.running[bufnr] = nil
  state.results[bufnr] = result
  if err then
    notify(err.message or vim.inspect(err), vim.log.levels.ERROR)
  elseif result and result.status == "done" then
    notify(string.format("edit done: %d change(s) applied", result.applied or 0))
  elseif result and result.status == "cancelled" then
    notify("edit cancelled: " .. (result.message or ""))
  end
  vim.cmd("doautocmd <nomodeline> User BlazeditDone")
end

-- A bridge that exits (or never starts: a broken install) ends the edits it had or was about to get;
-- otherwise they would stay running and User BlazeditDone would never fire.
local function on_exit(code, _, client_id)
  vim.schedule(function()
    for bufnr, running in pairs(state.running) do
      if running == true or running == client_id then
        state.pending[bufnr] = nil
        finish(bufnr, { message = string.format("the bridge exited (code %d) before the edit ended", code) })
      end
    end
  end)
end

local function on_attach(client, bufnr)
  local queued = state.pending[bufnr] or {}
  state.pending[bufnr] = nil
  for _, fn in ipairs(queued) do
    fn(client)
  end
end

local function client_config()
  return {
    name = "blazedit",
    cmd = config.cmd,
    root_dir = (vim.uv or vim.loop).cwd(),
    init_options = M.bridge_options(),
    settings = { blazedit = M.bridge_options() },
    on_attach = on_attach,
    on_exit = on_exit,
  }
end

local function start_client(bufnr)
  if vim.fn.executable(config.cmd[1]) ~= 1 then
    notify(
      "cannot start the bridge: '" .. config.cmd[1] .. "' is not an executable; install blazedit-lsp "
        .. "(pip install blazedit-lsp) or set cmd in require('blazedit').setup{}",
      vim.log.levels.ERROR
    )
    return nil
  end
  if vim.lsp.start then
    return vim.lsp.start(client_config(), { bufnr = bufnr })
  end
  local client = state.client_id and vim.lsp.get_client_by_id(state.client_id)
  if not client or is_stopped(client) then
    state.client_id = vim.lsp.start_client(client_config())
  end
  vim.lsp.buf_attach_client(bufnr, state.client_id)
  return state.client_id
end

-- Runs fn(client) once the bridge is initialized and has the buffer open (its didOpen sent);
-- false when the bridge could not be started.
local function with_client(bufnr, fn)
  local id = start_client(bufnr)
  local client = id and vim.lsp.get_client_by_id(id)
  if not client then
    return false
  end
  if client.initialized and vim.lsp.buf_is_attached(bufnr, id) then
    fn(client)
  else
    state.pending[bufnr] = state.pending[bufnr] or {}
    table.insert(state.pending[bufnr], fn)
  end
  return true
end

--- The LSP range covering whole lines first..last (1-based, inclusive): up to the start of the next line
--- (the bridge clamps a position past the last line to the end of the document).
local function line_range(first, last)
  return { start = { line = first - 1, character = 0 }, ["end"] = { line = last, character = 0 } }
end

local function execute(client, bufnr, command, argument, on_result)
  local params = { command = command, arguments = { argument } }
  local sent = request(client, "workspace/executeCommand", params, function(err, result)
    on_result(err, result)
  end, bufnr)
  if not sent then
    on_result({ message = "the bridge is not running (see :LspInfo / :messages)" })
  end
end

--- Edit the buffer (or lines first..last of it) with a natural-language instruction.
function M.edit(instruction, opts)
  opts = opts or {}
  local bufnr = opts.bufnr or vim.api.nvim_get_current_buf()
  if not instruction or vim.trim(instruction) == "" then
    notify("give an instruction, e.g. :BlazeditEdit add type hints", vim.log.levels.ERROR)
    return
  end
  state.running[bufnr] = true
  local started = with_client(bufnr, function(client)
    state.running[bufnr] = client.id
    local argument = { uri = vim.uri_from_bufnr(bufnr), instruction = vim.trim(instruction) }
    if opts.first then
      argument.range = line_range(opts.first, opts.last or opts.first)
    end
    execute(client, bufnr, "blazedit.edit", argument, function(err, result)
      finish(bufnr, err, result)
    end)
  end)
  if not started then
    state.running[bufnr] = nil
  end
end

-- The bridge attached to the buffer, if one runs (an edit may also come from a code action).
local function attached_client(bufnr)
  if vim.lsp.get_clients then
    return vim.lsp.get_clients({ bufnr = bufnr, name = "blazedit" })[1]
  end
  for _, client in pairs(vim.lsp.buf_get_clients(bufnr)) do
    if client.name == "blazedit" then
      return client
    end
  end
end

--- Cancel the edit running on the buffer (without starting a bridge to do it).
function M.cancel(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if state.running[bufnr] == true then -- still waiting for the bridge: the edit was never sent
    state.pending[bufnr] = nil
    finish(bufnr, nil, { status = "cancelled", applied = 0, skipped = 0, message = "before the bridge started" })
    return
  end
  local client = attached_client(bufnr)
  if not client then
    notify("no edit is running on this buffer")
    return
  end
  execute(client, bufnr, "blazedit.cancel", { uri = vim.uri_from_bufnr(bufnr) }, function(err)
    if err then
      notify(err.message or vim.inspect(err), vim.log.levels.ERROR)
    end
  end)
end

--- What the bridge answered for the buffer's last edit: { status = "done" | "partial" | "cancelled" |
--- "error" | "busy", applied = n, skipped = n, message = "..." }, or nil.
function M.last_result(bufnr)
  return state.results[bufnr or vim.api.nvim_get_current_buf()]
end

--- True while an edit started from this Neovim runs on the buffer.
function M.is_running(bufnr)
  return state.running[bufnr or vim.api.nvim_get_current_buf()] ~= nil
end

local function edit_command(args)
  if args.range > 0 then
    M.edit(args.args, { first = args.line1, last = args.line2 })
  else
    M.edit(args.args)
  end
end

--- Configure the plugin and define :BlazeditEdit and :BlazeditCancel.
function M.setup(opts)
  opts = opts or {}
  check_options(opts)
  config = vim.tbl_extend("force", vim.deepcopy(DEFAULTS), opts)
  vim.api.nvim_create_user_command("BlazeditEdit", edit_command, {
    nargs = "+",
    range = true,
    desc = "Edit the buffer (or the selected lines) with blazedit: :BlazeditEdit {instruction}",
  })
  vim.api.nvim_create_user_command("BlazeditCancel", function()
    M.cancel()
  end, { nargs = 0, desc = "Cancel the blazedit edit running on this buffer" })
end

return M
