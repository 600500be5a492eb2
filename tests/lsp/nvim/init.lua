-- Minimal Neovim config for the headless end-to-end test (Neovim >= 0.7, the Debian package):
-- start blazedit-lsp on the current buffer, run one command, wait for its answer, write the file, quit.
-- Environment: BLAZEDIT_PYTHON (the Python that has blazedit_lsp), BLAZEDIT_COMMAND, BLAZEDIT_ARGUMENT
-- (JSON; "$URI" is replaced by the buffer's URI), BLAZEDIT_APPLY_MODE, BLAZEDIT_RESULT (where to write the
-- command's answer as JSON). The bridge itself reads BLAZEDIT_URL and BLAZEDIT_API_KEY.
local env = vim.env
vim.opt.fixendofline = false -- write the buffer exactly as the edit left it

local function finish(outcome)
  vim.fn.writefile({ vim.fn.json_encode(outcome) }, env.BLAZEDIT_RESULT)
  vim.cmd('qall!')
end

local function run()
  local initialized = false
  local client_id = vim.lsp.start_client({
    name = 'blazedit',
    cmd = { env.BLAZEDIT_PYTHON, '-m', 'blazedit_lsp' },
    root_dir = vim.fn.getcwd(),
    init_options = { applyMode = env.BLAZEDIT_APPLY_MODE },
    on_init = function() initialized = true end,
  })
  vim.lsp.buf_attach_client(0, client_id)
  if not vim.wait(60000, function() return initialized end, 20) then
    finish({ error = 'blazedit-lsp did not initialize' })
  end

  local client = vim.lsp.get_client_by_id(client_id)
  local argument = vim.fn.json_decode((env.BLAZEDIT_ARGUMENT:gsub('%$URI', vim.uri_from_bufnr(0))))
  local answer = nil
  client.request('workspace/executeCommand', { command = env.BLAZEDIT_COMMAND, arguments = { argument } },
    function(err, result) answer = { error = err, result = result } end, 0)
  if not vim.wait(300000, function() return answer ~= nil end, 20) then
    finish({ error = 'no answer to ' .. env.BLAZEDIT_COMMAND })
  end
  vim.cmd('write')
  finish(answer)
end

-- the file named on the command line is loaded after this config: run once it is
vim.api.nvim_create_autocmd('VimEnter', {
  callback = function()
    local ok, err = pcall(run)
    if not ok then finish({ error = tostring(err) }) end
  end,
})
