//! Zed extension for blazedit: tells Zed how to start the `blazedit-lsp` bridge (stdio) and hands it the
//! `lsp.blazedit` settings as initialization options and as its workspace configuration.

use zed_extension_api::{self as zed, serde_json::Value, settings::LspSettings, LanguageServerId, Result};

const BRIDGE: &str = "blazedit-lsp";

struct Blazedit;

fn lsp_settings(id: &LanguageServerId, worktree: &zed::Worktree) -> Option<LspSettings> {
    LspSettings::for_worktree(id.as_ref(), worktree).ok()
}

impl zed::Extension for Blazedit {
    fn new() -> Self {
        Blazedit
    }

    /// `lsp.blazedit.binary` when the user set one, else `blazedit-lsp` from the worktree's PATH.
    fn language_server_command(&mut self, id: &LanguageServerId, worktree: &zed::Worktree) -> Result<zed::Command> {
        let binary = lsp_settings(id, worktree).and_then(|settings| settings.binary);
        let configured = binary.as_ref().and_then(|binary| binary.path.clone());
        let command = match configured {
            Some(path) => path,
            None => worktree.which(BRIDGE).ok_or_else(|| {
                format!("{BRIDGE} is not on PATH: `pip install blazedit-lsp`, or set lsp.blazedit.binary.path")
            })?,
        };
        let args = binary.and_then(|binary| binary.arguments).unwrap_or_default();
        Ok(zed::Command { command, args, env: worktree.shell_env() })
    }

    fn language_server_initialization_options(
        &mut self,
        id: &LanguageServerId,
        worktree: &zed::Worktree,
    ) -> Result<Option<Value>> {
        Ok(lsp_settings(id, worktree).and_then(|settings| settings.initialization_options))
    }

    fn language_server_workspace_configuration(
        &mut self,
        id: &LanguageServerId,
        worktree: &zed::Worktree,
    ) -> Result<Option<Value>> {
        Ok(lsp_settings(id, worktree).and_then(|settings| settings.settings))
    }
}

zed::register_extension!(Blazedit);
